"""Which program decides an LB node's announcements: our agent or ExaBGP's healthcheck, run by
ExaBGP as its API process. `deploy` swaps it on every LB node of a running lab; our agent
runs with bfdd beside ExaBGP, a baseline without (`set_bfdd`).

    dep = deploy(lab, Implementation.EXABGP_FAST)   # ExaBGP restarted on each LB, lab converged
    dep.api_pid("lb1")                              # the healthcheck's pid
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from anycast_ctl.errors import UserError
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.baseline import (
    CONFIG_FILE,
    Implementation,
    api_for,
    disable_path,
    lb_healthcheck_config,
)
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.net.daemons import Daemon
from anycast_ctl.lab.net.diagnose import descendants
from anycast_ctl.lab.nodes.common import lab_agent_api
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.render.node_files import ApiFor

API_MARKERS = {"agent run", "exabgp healthcheck"}  # how ExaBGP's API child shows in its cmdline


@dataclass
class Deployment:
    lab: LabHandle
    implementation: Implementation

    def api(self) -> ApiFor:
        return api_for(self.implementation, self.lab.topology) or lab_agent_api()

    def api_pid(self, lb: str) -> int | None:
        """ExaBGP's API process on `lb` (our agent or the healthcheck), if running."""
        exabgp = self.lab.daemon(lb, "exabgp")
        if not exabgp.running():
            return None
        for pid in descendants(exabgp.pid):
            line = f" {daemons.cmdline(pid)} "
            if any(f" {m} " in line for m in API_MARKERS):
                return pid
        return None

    def node_dir(self, lb: str) -> Path:
        return Path(self.lab.node_config_path(lb)).parent

    def lbs(self) -> list[str]:
        return [lb.name for lb in self.lab.topology.lbs if lb.vips]


def gone(pid: int | None, timeout: float = 5.0) -> None:
    if pid is not None:
        wait_for(lambda: not daemons.is_running(pid), timeout, what=f"pid {pid} to exit")


def stop_exabgp(dep: Deployment, lb: str) -> None:
    """SIGTERM ExaBGP (it ends its API process, which withdraws); make sure both are gone."""
    api = dep.api_pid(lb)
    daemons.stop(dep.lab.daemon(lb, "exabgp"), signal.SIGTERM, timeout=5)
    if api is not None and daemons.is_running(api):
        try:
            gone(api, 3)
        except TimeoutError:
            daemons.signal_pid(api, signal.SIGKILL)
            gone(api, 3)


def start_exabgp(dep: Deployment, lb: str) -> None:
    dep.lab.start_exabgp(lb, dep.api())


def deploy(
    lab: LabHandle, implementation: Implementation | str, timeout: float = 60.0
) -> Deployment:
    """Make `implementation` the API process of every LB node and wait until the lab has
    converged again. ExaBGP is restarted on every LB unless it already runs our agent and our
    agent is wanted (a baseline's settings are only read at start: always restart it)."""
    dep = Deployment(lab, Implementation(implementation))
    for lb in dep.lbs():
        set_bfdd(dep, lb)
        if _already_runs(dep, lb):
            continue
        if lab.daemon(lb, "exabgp").running():
            stop_exabgp(dep, lb)
        disable_path(dep.node_dir(lb)).unlink(missing_ok=True)
        start_exabgp(dep, lb)
        # One LB at a time: three ExaBGPs and agents starting at once on two cores can starve
        # a new agent past its lifeline's first heartbeat.
        wait_ready(dep, lb, timeout)
    lab.wait_converged(timeout)
    return dep


def set_bfdd(dep: Deployment, lb: str) -> bool:
    """bfdd runs on `lb` beside our agent and not beside a baseline: the baseline is ExaBGP's
    healthcheck as people deploy it, without BFD, so a silent node is caught only by the hold
    time. True when it had to be started or stopped. (With BFD off in the topology the node
    has no bfdd.conf and none is started.)"""
    try:
        bfdd: Daemon | None = dep.lab.daemon(lb, "bfdd")
    except LabError:
        bfdd = None
    running = bfdd is not None and bfdd.running()
    if dep.implementation is Implementation.ANYCAST and not running:
        return dep.lab.start_bfdd(lb) is not None
    if dep.implementation is not Implementation.ANYCAST and bfdd is not None and running:
        daemons.stop(bfdd, signal.SIGTERM, timeout=5)
        return True
    return False


def wait_ready(dep: Deployment, lb: str, timeout: float = 30.0) -> None:
    """Bounded wait until `lb`'s API process runs (and our agent answers on its socket)."""
    exabgp = dep.lab.daemon(lb, "exabgp")

    def ready() -> bool:
        if not exabgp.running():
            raise LabError(
                f"ExaBGP on {lb} exited while starting; see {exabgp.log_path}:\n"
                + daemons.log_tail(exabgp.log_path or "", 20)
            )
        if dep.api_pid(lb) is None:
            return False
        if dep.implementation is Implementation.ANYCAST:
            return bool(dep.lab.agent_request(lb, {"op": "status"}).get("ok"))
        return True

    wait_for(
        ready,
        timeout,
        interval=0.05,
        what=f"{dep.implementation} on {lb}",
        ignore=(OSError, UserError),
    )


def _already_runs(dep: Deployment, lb: str) -> bool:
    pid = dep.api_pid(lb)
    if pid is None:
        return False
    line = f" {daemons.cmdline(pid)} "
    if dep.implementation is Implementation.ANYCAST:
        return " agent run " in line
    # Both baselines run the same command line; their settings are in healthcheck.conf, which
    # is only written when ExaBGP is started: it says what the running healthcheck read.
    path = dep.node_dir(lb) / CONFIG_FILE
    wanted = lb_healthcheck_config(dep.implementation, dep.lab.topology, lb, dep.node_dir(lb))
    return " exabgp healthcheck " in line and path.exists() and path.read_text() == wanted
