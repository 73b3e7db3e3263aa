"""Failure and maintenance events on one LB node of a running lab, their recoveries, and the
swap between our agent and ExaBGP's healthcheck as the LB nodes' ExaBGP API process.

    dep = deploy(lab, Implementation.ANYCAST)      # every LB runs it; lab converged
    ev = trigger(dep, Scenario.HAPROXY_KILL, "lb1")   # ev.at: monotonic time just before the act
    t1 = recover(dep, ev)                            # monotonic time just before the recovery act
    restore(dep, "lb1")                              # whatever is still broken, mend it; converge

Every act is on a recorded pid or a named interface: nothing is killed by name.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from anycast_ctl.errors import UserError
from anycast_ctl.lab import daemons, netns, nodes
from anycast_ctl.lab.baseline import Implementation, api_command, config_path, disable_path, lb_healthcheck_config
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.state import LabError


class Scenario(StrEnum):
    STEADY = "steady"  # no event: steady load only; counts withdrawals nobody deserved
    HAPROXY_KILL = "haproxy-kill"  # SIGKILL; recovery: start HAProxy again
    HAPROXY_HANG = "haproxy-hang"  # SIGSTOP; recovery: SIGCONT
    AGENT_KILL = "agent-kill"  # SIGKILL of ExaBGP's API process (agent or healthcheck)
    EXABGP_KILL = "exabgp-kill"  # SIGKILL; recovery: start ExaBGP again
    DRAIN = "drain"  # anycast-ctl drain (healthcheck: its --disable file); recovery: undrain
    LINK_DOWN = "link-down"  # the LB's router-facing links down; recovery: up


EVENTS: tuple[Scenario, ...] = tuple(s for s in Scenario if s is not Scenario.STEADY)
API_MARKERS = {"agent run", "exabgp healthcheck"}  # how ExaBGP's API child shows in its cmdline


@dataclass
class Deployment:
    lab: object  # anycast_ctl.lab.topology_up.Lab
    implementation: Implementation

    def api(self) -> nodes.ApiCommand:
        return api_command(self.implementation, self.lab.topology) or nodes.agent_command

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


@dataclass
class Event:
    scenario: Scenario
    lb: str
    at: float  # time.monotonic() just before the act
    pids: dict[str, int] = field(default_factory=dict)  # what was acted on
    detail: dict = field(default_factory=dict)  # e.g. the drain CLI's own duration


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in daemons.all_pids():
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
            ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill(pid: int | None, sig: int) -> None:
    if pid is None:
        raise LabError(f"nothing to signal ({signal.Signals(sig).name}): process not found")
    os.kill(pid, sig)


def _gone(pid: int | None, timeout: float = 5.0) -> None:
    if pid is not None:
        wait_for(lambda: not daemons.is_running(pid), timeout, what=f"pid {pid} to exit")


def uplinks(lab, lb: str) -> list[str]:
    """The LB's interfaces toward routers (its own end of each router link)."""
    return [lab.plan.interface(lb, peer).name for peer in lab.topology.neighbors(lb)
            if lab.topology.kind(peer) == "router"]


def _cli(lab, *args: str) -> float:
    """Run `anycast-ctl ARGS` (tagged); return how long it took. Raises on failure."""
    started = time.monotonic()
    result = daemons.run(lab.tag, [nodes.venv_script("anycast-ctl"), *args], timeout=30)
    if not result.ok:
        raise LabError(f"anycast-ctl {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
    return time.monotonic() - started


# ---------------------------------------------------------------- deploy
def stop_exabgp(dep: Deployment, lb: str) -> None:
    """SIGTERM ExaBGP (it ends its API process, which withdraws); make sure both are gone."""
    api = dep.api_pid(lb)
    daemons.stop(dep.lab.daemon(lb, "exabgp"), signal.SIGTERM, timeout=5)
    if api is not None and daemons.is_running(api):
        try:
            _gone(api, 3)
        except TimeoutError:
            os.kill(api, signal.SIGKILL)
            _gone(api, 3)


def start_exabgp(dep: Deployment, lb: str) -> None:
    dep.lab.start_exabgp(lb, dep.api())


def deploy(lab, implementation: Implementation | str, timeout: float = 60.0) -> Deployment:
    """Make `implementation` the API process of every LB node and wait until the lab has
    converged again. ExaBGP is restarted on every LB unless it already runs our agent and our
    agent is wanted (a baseline's settings are only read at start: always restart it)."""
    dep = Deployment(lab, Implementation(implementation))
    for lb in dep.lbs():
        if _already_runs(dep, lb):
            continue
        if lab.daemon(lb, "exabgp").running():
            stop_exabgp(dep, lb)
        disable_path(dep.node_dir(lb)).unlink(missing_ok=True)
        start_exabgp(dep, lb)
    lab.wait_converged(timeout)
    return dep


def _already_runs(dep: Deployment, lb: str) -> bool:
    pid = dep.api_pid(lb)
    if pid is None:
        return False
    line = f" {daemons.cmdline(pid)} "
    if dep.implementation is Implementation.ANYCAST:
        return " agent run " in line
    # Both baselines run the same command line; their settings are in healthcheck.conf, which
    # is only written when ExaBGP is started: it says what the running healthcheck read.
    path = config_path(dep.node_dir(lb))
    wanted = lb_healthcheck_config(dep.implementation, dep.lab.topology, lb, dep.node_dir(lb))
    return " exabgp healthcheck " in line and path.exists() and path.read_text() == wanted


# ---------------------------------------------------------------- events
def trigger(dep: Deployment, scenario: Scenario | str, lb: str) -> Event:
    scenario = Scenario(scenario)
    lab = dep.lab
    if scenario is Scenario.STEADY:
        return Event(scenario, lb, time.monotonic())
    if scenario in (Scenario.HAPROXY_KILL, Scenario.HAPROXY_HANG):
        haproxy = lab.daemon(lb, "haproxy")
        if not haproxy.running():
            raise LabError(f"HAProxy on {lb} is not running")
        sig = signal.SIGKILL if scenario is Scenario.HAPROXY_KILL else signal.SIGSTOP
        at = time.monotonic()
        os.kill(haproxy.pid, sig)
        return Event(scenario, lb, at, {"haproxy": haproxy.pid})
    if scenario is Scenario.AGENT_KILL:
        pid = dep.api_pid(lb)
        at = time.monotonic()
        _kill(pid, signal.SIGKILL)
        return Event(scenario, lb, at, {"api": pid})
    if scenario is Scenario.EXABGP_KILL:
        exabgp, api = lab.daemon(lb, "exabgp"), dep.api_pid(lb)
        at = time.monotonic()
        _kill(exabgp.pid if exabgp.running() else None, signal.SIGKILL)
        return Event(scenario, lb, at, {"exabgp": exabgp.pid, **({"api": api} if api else {})})
    if scenario is Scenario.DRAIN:
        at = time.monotonic()
        if dep.implementation is Implementation.ANYCAST:
            took = _cli(lab, "drain", "--config", str(lab.node_config_path(lb)), "--reason", "lab failover experiment")
            return Event(scenario, lb, at, detail={"cli_seconds": round(took, 4)})
        disable_path(dep.node_dir(lb)).touch()
        return Event(scenario, lb, at)
    if scenario is Scenario.LINK_DOWN:
        links = uplinks(lab, lb)
        at = time.monotonic()
        for ifname in links:
            netns.set_link_down(lab.namespace(lb), ifname)
        return Event(scenario, lb, at, detail={"links": links})
    raise LabError(f"unknown scenario {scenario}")


def recover(dep: Deployment, event: Event, respawn_wait: float = 3.0) -> float | None:
    """Undo the event; return time.monotonic() just before the recovery act (None: the event
    needs none). After an agent kill ExaBGP may respawn its API process by itself: then the
    event itself was the recovery act, and its time is returned."""
    lab, lb, s = dep.lab, event.lb, event.scenario
    if s is Scenario.STEADY:
        return None
    if s is Scenario.HAPROXY_KILL:
        _gone(event.pids["haproxy"])
        at = time.monotonic()
        lab.start_haproxy(lb)
        return at
    if s is Scenario.HAPROXY_HANG:
        at = time.monotonic()
        os.kill(event.pids["haproxy"], signal.SIGCONT)
        return at
    if s is Scenario.AGENT_KILL:
        exabgp = lab.daemon(lb, "exabgp")

        def settled() -> str | None:
            # ExaBGP either respawns its API process (api.respawn) or ends (api.terminate).
            if not exabgp.running():
                return "exabgp-ended"
            return "respawned" if dep.api_pid(lb) not in (None, event.pids.get("api")) else None

        try:
            outcome = wait_for(settled, respawn_wait, what=f"ExaBGP on {lb} to respawn its API process or end")
        except TimeoutError:
            outcome = "neither"
        event.detail["after_kill"] = outcome
        if outcome == "respawned":
            return event.at
        if exabgp.running():
            stop_exabgp(dep, lb)
        at = time.monotonic()
        start_exabgp(dep, lb)
        return at
    if s is Scenario.EXABGP_KILL:
        _gone(event.pids["exabgp"])
        orphan = event.pids.get("api")
        if orphan is not None and daemons.is_running(orphan):  # part of what was killed
            os.kill(orphan, signal.SIGKILL)
            _gone(orphan)
        at = time.monotonic()
        start_exabgp(dep, lb)
        return at
    if s is Scenario.DRAIN:
        at = time.monotonic()
        if dep.implementation is Implementation.ANYCAST:
            event.detail["undrain_cli_seconds"] = round(_cli(lab, "undrain", "--config", str(lab.node_config_path(lb))), 4)
        else:
            disable_path(dep.node_dir(lb)).unlink(missing_ok=True)
        return at
    if s is Scenario.LINK_DOWN:
        at = time.monotonic()
        for ifname in event.detail["links"]:
            netns.set_link_up(lab.namespace(lb), ifname)
        return at
    raise LabError(f"unknown scenario {s}")


def restore(dep: Deployment, lb: str, timeout: float = 60.0) -> list[str]:
    """Mend whatever an interrupted run left broken on `lb`, then wait for convergence.
    Returns what had to be mended ([] when the recovery already did it all)."""
    lab, mended = dep.lab, []
    for ifname in uplinks(lab, lb):
        netns.set_link_up(lab.namespace(lb), ifname)  # idempotent
    haproxy = lab.daemon(lb, "haproxy")
    if haproxy.running():
        os.kill(haproxy.pid, signal.SIGCONT)  # harmless when it was not stopped
    else:
        lab.start_haproxy(lb)
        mended.append("HAProxy started")
    if disable_path(dep.node_dir(lb)).exists():
        disable_path(dep.node_dir(lb)).unlink()
        mended.append("healthcheck enabled")
    if not lab.daemon(lb, "exabgp").running() or dep.api_pid(lb) is None:
        if lab.daemon(lb, "exabgp").running():
            stop_exabgp(dep, lb)
        start_exabgp(dep, lb)
        mended.append("ExaBGP started")
    if dep.implementation is Implementation.ANYCAST and _drained(dep, lb):
        _cli(lab, "undrain", "--config", str(lab.node_config_path(lb)))
        mended.append("undrained")
    lab.wait_converged(timeout)
    return mended


def _drained(dep: Deployment, lb: str) -> bool:
    def status() -> dict:
        return dep.lab.agent_request(lb, {"op": "status"})

    answer = wait_for(status, 10, what=f"agent on {lb} to answer", ignore=(OSError, LabError, UserError))
    return any(vip.get("drain") for vip in answer.get("vips", []))
