"""Second chance driven BY THE LAB (not by the agent): the tables of render/chance.py loaded on
every LB node of a running lab through chance/apply.py, so `lab failover --second-chance on`
can measure forwarding before the agent manages the tables itself.

    load(lab)            # every LB node: devices + table, no entries (before connections open:
                         # conntrack must see their handshakes)
    load_owners(lab)     # each node's established connections (`ss`), given to every other
                         # node as per-flow entries: whoever a router moves a flow to sends it
                         # to its owner, whatever the event
    unload(lab)          # every table and device gone (forwarding off)

The entries do not depend on the event: every node knows the owner of every connection held
when `load_owners` ran, so one hop reaches the owner after any single change.
Which events the tables still break nothing after: forwarding.LAB_STILL_SERVING.
"""

from __future__ import annotations

from anycast_ctl.chance import apply as chance
from anycast_ctl.chance.connections import parse_established
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import daemons
from anycast_ctl.render.chance import plan_for
from anycast_ctl.sim.owners import ForwardEntry

OVERLAY_MTU = 1500  # the lab's LB<->router links carry 1550 (render/hostnet.UNDERLAY_MTU)


def _lbs(lab: LabHandle) -> list[str]:
    return [lb.name for lb in lab.topology.lbs if lb.vips]


def _apply(lab: LabHandle, entries: dict[str, tuple[ForwardEntry, ...]]) -> None:
    lbs = _lbs(lab)
    for lb in lbs:
        plan = plan_for(
            lab.topology, lb, alive=frozenset(lbs), entries=entries.get(lb, ()), mtu=OVERLAY_MTU
        )
        try:
            chance.apply_plan(plan, lab.namespace(lb))
        except chance.ChanceError as exc:
            raise LabError(f"second chance on {lb}: {exc}") from exc


def load(lab: LabHandle) -> None:
    _apply(lab, {})


def owned_connections(lab: LabHandle, lb: str) -> list[tuple[str, int, str, int]]:
    vips = [(str(v.ip), v.port) for v in lab.topology.vips if v.name in lab.topology.lb(lb).vips]
    result = daemons.run(
        lab.tag, ["ss", "-Htn", "state", "established"], netns=lab.namespace(lb), timeout=10
    )
    if not result.ok:
        raise LabError(f"ss on {lb}: exit {result.returncode}: {result.stderr.strip()}")
    return parse_established(result.stdout, vips)


def load_owners(lab: LabHandle) -> int:
    """Give every node the owners of the others' connections; returns how many flows."""
    owned = {lb: owned_connections(lab, lb) for lb in _lbs(lab)}
    entries = {
        lb: tuple(
            ForwardEntry(flow, owner)
            for owner, flows in owned.items()
            if owner != lb
            for flow in flows
        )
        for lb in owned
    }
    _apply(lab, entries)
    return sum(len(f) for f in owned.values())


def unload(lab: LabHandle) -> None:
    for lb in _lbs(lab):
        try:
            chance.remove(lab.namespace(lb))
        except chance.ChanceError as exc:
            raise LabError(f"second chance on {lb}: {exc}") from exc
