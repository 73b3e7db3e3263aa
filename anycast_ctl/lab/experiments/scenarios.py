"""Failure and maintenance events on one LB node (or one router) of a running lab, and their
recoveries.

    dep = deploy(lab, Implementation.ANYCAST)      # deployment.py: every LB runs it
    ev = trigger(dep, Scenario.HAPROXY_KILL, "lb1")   # ev.at: monotonic time just before the act
    t1 = recover(dep, ev)                            # monotonic time just before the recovery act
    restore(dep, "lb1")                              # whatever is still broken, mend it; converge

Router scenarios (ROUTER_SCENARIOS) act on a router instead (lab/experiments/router_acts.py);
`finish(dep, ev)` is the part of an event that comes after its withdrawal (router-drain: the
router goes once its upstream neighbours stopped using it).

Every act is on a recorded pid or a named interface: nothing is killed by name. The scenarios'
names and the facts about them that need no lab are in scenario_names.py (pure).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field

from anycast_ctl.errors import UserError
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments import connect_checks, flaky, freeze_acts, hang_acts, router_acts
from anycast_ctl.lab.experiments.baseline import Implementation, disable_path
from anycast_ctl.lab.experiments.deployment import (
    Deployment,
    deploy,
    gone,
    set_bfdd,
    start_exabgp,
    stop_exabgp,
)
from anycast_ctl.lab.experiments.scenario_names import (
    FLAKY_PERCENT,
    HANG_SCENARIOS,
    ROUTER_SCENARIOS,
    Scenario,
)
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import daemons, netns
from anycast_ctl.lab.nodes.common import venv_script
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.render import hostnet

# `deploy` comes along: every scenario run starts with one.
__all__ = [
    "Deployment",
    "Event",
    "deploy",
    "finish",
    "flaky_event",
    "recover",
    "restore",
    "trigger",
    "uplinks",
]


# The process each hang scenario stops (hang_acts.freeze).
_HANG_TARGETS: dict[Scenario, str] = {
    Scenario.AGENT_HANG: hang_acts.AGENT,
    Scenario.EXABGP_HANG: hang_acts.EXABGP,
}


@dataclass
class Event:
    scenario: Scenario
    lb: str
    at: float  # time.monotonic() just before the act
    pids: dict[str, int] = field(default_factory=dict)  # what was acted on
    detail: dict = field(default_factory=dict)  # e.g. the drain CLI's own duration


def _kill(pid: int | None, sig: int) -> int:
    """Signal `pid`; return it. LabError when there is no process to signal."""
    if pid is None:
        raise LabError(f"nothing to signal ({signal.Signals(sig).name}): process not found")
    daemons.signal_pid(pid, sig)
    return pid


def uplinks(lab: LabHandle, lb: str) -> list[str]:
    """The LB's interfaces toward routers (its own end of each router link)."""
    return [
        lab.plan.interface(lb, peer).name
        for peer in lab.topology.neighbors(lb)
        if lab.topology.kind(peer) == "router"
    ]


def _cli(lab: LabHandle, *args: str) -> float:
    """Run `anycast-ctl ARGS` (tagged); return how long it took. Raises on failure."""
    started = time.monotonic()
    result = daemons.run(lab.tag, [venv_script("anycast-ctl"), *args], timeout=30)
    if not result.ok:
        raise LabError(
            f"anycast-ctl {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}"
        )
    return time.monotonic() - started


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
        daemons.signal_pid(haproxy.pid, sig)
        return Event(scenario, lb, at, {"haproxy": haproxy.pid})
    if scenario is Scenario.AGENT_KILL:
        pid = dep.api_pid(lb)
        at = time.monotonic()
        killed = _kill(pid, signal.SIGKILL)
        return Event(scenario, lb, at, {"api": killed})
    if scenario is Scenario.EXABGP_KILL:
        exabgp, api = lab.daemon(lb, "exabgp"), dep.api_pid(lb)
        at = time.monotonic()
        _kill(exabgp.pid if exabgp.running() else None, signal.SIGKILL)
        return Event(scenario, lb, at, {"exabgp": exabgp.pid, **({"api": api} if api else {})})
    if scenario is Scenario.DRAIN:
        at = time.monotonic()
        if dep.implementation is Implementation.ANYCAST:
            took = _cli(
                lab,
                "drain",
                "--config",
                str(lab.node_config_path(lb)),
                "--reason",
                "lab failover experiment",
            )
            return Event(scenario, lb, at, detail={"cli_seconds": round(took, 4)})
        disable_path(dep.node_dir(lb)).touch()
        return Event(scenario, lb, at)
    if scenario is Scenario.LINK_DOWN:
        links = uplinks(lab, lb)
        at = time.monotonic()
        for ifname in links:
            netns.set_link_down(lab.namespace(lb), ifname)
        return Event(scenario, lb, at, detail={"links": links})
    if scenario is Scenario.ROUTER_KILL:
        at = time.monotonic()
        pids = router_acts.kill_router(lab, lb, signal.SIGKILL)
        return Event(scenario, lb, at, pids)
    if scenario is Scenario.ROUTER_DRAIN:
        at = time.monotonic()
        peers = router_acts.withdraw_upstream(lab, lb)
        return Event(scenario, lb, at, detail={"withdrawn_towards": ",".join(peers)})
    if scenario in HANG_SCENARIOS or scenario is Scenario.FLAKY:
        return _trigger_hang_or_flaky(dep, scenario, lb)
    if scenario is Scenario.NODE_FREEZE:
        at, pids = freeze_acts.freeze(dep, lb, uplinks(lab, lb))
        return Event(scenario, lb, at, pids)
    raise LabError(f"unknown scenario {scenario}")


def flaky_event(dep: Deployment, lb: str, late_percent: int = FLAKY_PERCENT) -> Event:
    """The flaky scenario's act, with its share of late checks (trigger: FLAKY_PERCENT)."""
    if dep.implementation is Implementation.ANYCAST:
        connect_checks.use_connects(dep, lb)  # so the late SYNs reach the agent's check too
    at = time.monotonic()
    flaky.apply(dep.lab, lb, late_percent)
    return Event(Scenario.FLAKY, lb, at, detail={"late_percent": late_percent})


def _trigger_hang_or_flaky(dep: Deployment, scenario: Scenario, lb: str) -> Event:
    if scenario is Scenario.FLAKY:
        return flaky_event(dep, lb)
    at, pids = hang_acts.freeze(dep, lb, _HANG_TARGETS[scenario])
    return Event(scenario, lb, at, pids)


def _recover_hang_or_flaky(dep: Deployment, event: Event) -> float:
    if event.scenario is Scenario.FLAKY:
        event.detail["late_checks"] = flaky.dropped(dep.lab, event.lb)
        at = time.monotonic()
        flaky.remove(dep.lab, event.lb)
        if dep.implementation is Implementation.ANYCAST:
            connect_checks.restore(dep, event.lb)
        return at
    at, how = hang_acts.thaw(dep, event.lb, _HANG_TARGETS[event.scenario], event.pids)
    event.detail["recovery"] = how
    return at


def finish(dep: Deployment, event: Event) -> None:
    """What the event does once the node is out of every FIB (most do nothing more)."""
    if event.scenario is Scenario.ROUTER_DRAIN:
        event.pids.update(router_acts.kill_router(dep.lab, event.lb, signal.SIGTERM))


def recover(dep: Deployment, event: Event, respawn_wait: float = 3.0) -> float | None:
    """Undo the event; return time.monotonic() just before the recovery act (None: the event
    needs none). After an agent kill ExaBGP may respawn its API process by itself: then the
    event itself was the recovery act, and its time is returned."""
    lab, lb, s = dep.lab, event.lb, event.scenario
    if s is Scenario.STEADY:
        return None
    if s is Scenario.HAPROXY_KILL:
        gone(event.pids["haproxy"])
        at = time.monotonic()
        lab.start_haproxy(lb)
        return at
    if s is Scenario.HAPROXY_HANG:
        at = time.monotonic()
        daemons.signal_pid(event.pids["haproxy"], signal.SIGCONT)
        return at
    if s is Scenario.AGENT_KILL:
        exabgp = lab.daemon(lb, "exabgp")

        def settled() -> str | None:
            # ExaBGP either respawns its API process (api.respawn) or ends (api.terminate).
            if not exabgp.running():
                return "exabgp-ended"
            return "respawned" if dep.api_pid(lb) not in (None, event.pids.get("api")) else None

        try:
            outcome = wait_for(
                settled, respawn_wait, what=f"ExaBGP on {lb} to respawn its API process or end"
            )
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
        gone(event.pids["exabgp"])
        orphan = event.pids.get("api")
        if orphan is not None and daemons.is_running(orphan):  # part of what was killed
            daemons.signal_pid(orphan, signal.SIGKILL)
            gone(orphan)
        at = time.monotonic()
        start_exabgp(dep, lb)
        return at
    if s is Scenario.DRAIN:
        at = time.monotonic()
        if dep.implementation is Implementation.ANYCAST:
            event.detail["undrain_cli_seconds"] = round(
                _cli(lab, "undrain", "--config", str(lab.node_config_path(lb))), 4
            )
        else:
            disable_path(dep.node_dir(lb)).unlink(missing_ok=True)
        return at
    if s is Scenario.LINK_DOWN:
        at = time.monotonic()
        for ifname in event.detail["links"]:
            netns.set_link_up(lab.namespace(lb), ifname)
        event.detail["routes_readded"] = readd_static_routes(lab, lb)
        return at
    if s in ROUTER_SCENARIOS:
        at = time.monotonic()
        router_acts.bring_back(lab, lb)
        return at
    if s in HANG_SCENARIOS or s is Scenario.FLAKY:
        return _recover_hang_or_flaky(dep, event)
    if s is Scenario.NODE_FREEZE:
        at, how = freeze_acts.thaw(dep, lb, event.pids)
        event.detail["recovery"] = how
        return at
    raise LabError(f"unknown scenario {s}")


def readd_static_routes(lab: LabHandle, lb: str) -> int:
    """Put back the lab's static routes of `lb` that a link going down deleted (the kernel
    drops a single-path route with its device; bringing the link up does not restore it, as
    a host's network configuration would). Returns how many were missing."""
    ns, missing = lab.namespace(lb), 0
    for route in hostnet.static_routes(lab.topology, lab.plan).get(lb, ()):
        if not netns.fib_routes(ns, route.prefix):
            # replace: an LB node's route keeper (lab/nodes/lb.py) may put it back meanwhile
            netns.add_multipath_route(
                ns,
                route.prefix,
                [(h.gateway, h.device) for h in route.nexthops],
                route.source,
                replace=True,
            )
            missing += 1
    return missing


def restore(
    dep: Deployment, lb: str, timeout: float = 60.0, fresh_exabgp: bool = False
) -> list[str]:
    """Mend whatever an interrupted run left broken on `lb`, then wait for convergence.
    Returns what had to be mended ([] when the recovery already did it all).

    fresh_exabgp: restart ExaBGP even if it runs. After an agent kill that ExaBGP answered by
    respawning, the next kill would count against ExaBGP's respawn budget (six deaths in a
    64 s window make it exit): runs must not depend on each other."""
    lab, mended = dep.lab, []
    if lab.topology.kind(lb) == "router":
        if not router_acts.intact(lab, lb):
            mended = router_acts.bring_back(lab, lb)
        lab.wait_converged(timeout)
        return mended
    if freeze_acts.mend(dep, lb):
        mended.append("node-freeze undone")
    if hang_acts.continue_stopped(dep, lb):
        mended.append("ExaBGP or its API process continued")
    flaky.remove(lab, lb)  # idempotent
    if set_bfdd(dep, lb):
        mended.append("bfdd set as the deployment wants it")
    if fresh_exabgp and lab.daemon(lb, "exabgp").running():
        stop_exabgp(dep, lb)
        mended.append("ExaBGP stopped for a fresh start")
    for ifname in uplinks(lab, lb):
        netns.set_link_up(lab.namespace(lb), ifname)  # idempotent
    if readd_static_routes(lab, lb):
        mended.append("static routes re-added")
    haproxy = lab.daemon(lb, "haproxy")
    if haproxy.running():
        daemons.signal_pid(haproxy.pid, signal.SIGCONT)  # harmless when it was not stopped
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

    answer = wait_for(
        status, 10, what=f"agent on {lb} to answer", ignore=(OSError, LabError, UserError)
    )
    return any(vip.get("drain") for vip in answer.get("vips", []))
