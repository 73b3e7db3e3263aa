"""The node-freeze scenario's acts: every process of an LB node stopped and its router-facing
traffic silently dropped while the links stay up (a hung host, a paused VM), and the undo.

Nothing on the node can close its BGP sessions: without BFD the routers keep it until their
hold timer; with BFD (docs/bfd.md) they close the sessions once `interval x multiplier`
passes without a hello. The processes are the node's recorded daemons (HAProxy, bfdd,
ExaBGP) and ExaBGP's descendants (the agent or healthcheck, the agent's guardian): recorded
pids only. The drop is an nft `netdev` table with an ingress and an egress hook on each uplink
(ARP included), so the kernel answers nothing either.

The recovery deletes the table and SIGCONTs everything, parents first (ExaBGP before its API
process before the guardian). A guardian that wakes to a long heartbeat gap ends the agent
and ExaBGP (fail closed); ExaBGP is then started again, as a service manager would.
"""

from __future__ import annotations

import signal
import time

from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.deployment import Deployment, gone, start_exabgp
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.net.diagnose import descendants
from anycast_ctl.lab.poll import wait_for

TABLE = "anycast_freeze"
NODE_DAEMONS = ("exabgp", "haproxy", "bfdd")


def drop_ruleset(uplinks: list[str]) -> str:
    """Pure: the nft script that drops everything in and out of each uplink."""
    lines = [f"table netdev {TABLE} {{"]
    for i, ifname in enumerate(uplinks):
        for hook in ("ingress", "egress"):
            lines += [
                f"  chain {hook}{i} {{",
                f'    type filter hook {hook} device "{ifname}" priority 0; policy drop;',
                "  }",
            ]
    return "\n".join([*lines, "}"]) + "\n"


def _nft(lab: LabHandle, lb: str, stdin: str) -> None:
    result = daemons.run(
        lab.tag, ["nft", "-f", "-"], netns=lab.namespace(lb), timeout=10, stdin=stdin
    )
    if not result.ok:
        raise LabError(f"nft in {lb}: exit {result.returncode}: {result.stderr.strip()}")


def remove_drop(lab: LabHandle, lb: str) -> None:
    """Idempotent: add the table (a no-op when present), then delete it."""
    _nft(lab, lb, f"table netdev {TABLE}\ndelete table netdev {TABLE}\n")


def node_pids(dep: Deployment, lb: str) -> dict[str, int]:
    """name -> pid of every running process of the node, parents before children."""
    found: dict[str, int] = {}
    recorded = dep.lab.daemons().get(lb, {})
    for name in NODE_DAEMONS:
        daemon = recorded.get(name)
        if daemon is not None and daemon.running():
            found[name] = daemon.pid
    if "exabgp" not in found:
        raise LabError(f"ExaBGP on {lb} is not running")
    for i, pid in enumerate(descendants(found["exabgp"])):
        found[f"exabgp-child{i}"] = pid
    return found


def freeze(dep: Deployment, lb: str, uplinks: list[str]) -> tuple[float, dict[str, int]]:
    """SIGSTOP every process of `lb`, then drop its uplinks' traffic; (time just before, pids)."""
    found = node_pids(dep, lb)
    at = time.monotonic()
    for pid in found.values():
        daemons.signal_pid(pid, signal.SIGSTOP)
    _nft(dep.lab, lb, drop_ruleset(uplinks))
    return at, found


def thaw(dep: Deployment, lb: str, found: dict[str, int]) -> tuple[float, str]:
    """Undo `freeze`: (time just before the recovery act, "sigcont" or "restarted")."""
    at = time.monotonic()
    remove_drop(dep.lab, lb)
    for pid in found.values():
        if daemons.is_running(pid):
            daemons.signal_pid(pid, signal.SIGCONT)
    exabgp = dep.lab.daemon(lb, "exabgp")

    def settled() -> str | None:
        if not exabgp.running():
            return "ended"
        return "alive" if dep.api_pid(lb) is not None else None

    try:
        outcome = wait_for(settled, 3.0, what=f"ExaBGP on {lb} after the thaw")
    except TimeoutError:
        outcome = "alive"
    if outcome == "alive" and exabgp.running():
        return at, "sigcont"
    for pid in found.values():  # what the guardian left of the pair is in the way
        if daemons.is_running(pid) and pid != found.get("haproxy") and pid != found.get("bfdd"):
            daemons.signal_pid(pid, signal.SIGKILL)
            gone(pid, 3)
    start_exabgp(dep, lb)
    return at, "restarted"


def mend(dep: Deployment, lb: str) -> bool:
    """After an interrupted run: no drop table, nothing of the node left stopped. True when
    something was stopped."""
    remove_drop(dep.lab, lb)
    stopped = False
    for daemon in dep.lab.daemons().get(lb, {}).values():
        if daemon.running():
            pids = [daemon.pid, *descendants(daemon.pid)]
            for pid in pids:
                if daemons.is_stopped(pid):
                    daemons.signal_pid(pid, signal.SIGCONT)
                    stopped = True
    return stopped
