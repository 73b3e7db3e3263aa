"""The hang scenarios' acts: SIGSTOP of an LB node's ExaBGP API process (agent-hang: our
agent, or the healthcheck for a baseline) or of ExaBGP itself (exabgp-hang), and their
recovery.

A stopped process closes nothing: to a router the BGP session looks healthy until its hold
timer. Our agent's guardian (agent/lifeline.py) SIGKILLs a stalled agent and ExaBGP; the agent
SIGKILLs a stopped ExaBGP (agent/exabgp_watch.py) and then exits. The healthcheck has no such
watch: a stopped healthcheck leaves its routes announced, a stopped ExaBGP keeps them until
the hold timer.

The recovery is SIGCONT when the stopped process still exists; when the guardian ended it,
ExaBGP is started again, as a service manager would restart the unit.
"""

from __future__ import annotations

import signal
import time

from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.deployment import Deployment, gone, start_exabgp
from anycast_ctl.lab.net import daemons

AGENT = "api"
EXABGP = "exabgp"


def pids(dep: Deployment, lb: str) -> dict[str, int]:
    """ExaBGP's and its API process's pids on `lb` (LabError if either is missing)."""
    exabgp, api = dep.lab.daemon(lb, "exabgp"), dep.api_pid(lb)
    if not exabgp.running() or exabgp.pid is None or api is None:
        raise LabError(f"ExaBGP on {lb} or its API process is not running")
    return {EXABGP: exabgp.pid, AGENT: api}


def freeze(dep: Deployment, lb: str, which: str) -> tuple[float, dict[str, int]]:
    """SIGSTOP `which` (AGENT or EXABGP) on `lb`; (monotonic time just before, both pids)."""
    found = pids(dep, lb)
    at = time.monotonic()
    daemons.signal_pid(found[which], signal.SIGSTOP)
    return at, found


def thaw(dep: Deployment, lb: str, which: str, found: dict[str, int]) -> tuple[float, str]:
    """Undo `freeze`: (monotonic time just before the recovery act, what it was)."""
    stopped = found[which]
    if daemons.is_running(stopped):
        at = time.monotonic()
        daemons.signal_pid(stopped, signal.SIGCONT)
        return at, "sigcont"
    # The guardian ended it: ExaBGP goes (killed, or stopped by the guardian) and so does the
    # agent (it exits once ExaBGP is gone). Whatever is left of the pair is in the way.
    for pid in (found[EXABGP], found[AGENT]):
        try:
            gone(pid, 5)
        except TimeoutError:
            daemons.signal_pid(pid, signal.SIGKILL)
            gone(pid, 3)
    at = time.monotonic()
    start_exabgp(dep, lb)
    return at, "restarted"


def continue_stopped(dep: Deployment, lb: str) -> bool:
    """SIGCONT ExaBGP and its API process on `lb` if one is stopped (an interrupted hang run);
    True when one was."""
    exabgp = dep.lab.daemon(lb, "exabgp")
    candidates = [exabgp.pid] if exabgp.running() and exabgp.pid is not None else []
    if candidates:
        api = dep.api_pid(lb)
        candidates += [api] if api is not None else []
    stopped = [pid for pid in candidates if daemons.is_stopped(pid)]
    for pid in stopped:
        daemons.signal_pid(pid, signal.SIGCONT)
    return bool(stopped)
