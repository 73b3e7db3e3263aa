"""What a converged lab should look like, and how far an observed one is from it (pure).

A router is converged when every BGP session of its plan is Established, the BFD session of
every LB session whose LB runs bfdd is Up (an experiment that starts before BFD is up would
measure the hold time instead), no LB session whose LB's bfdd was stopped still shows BFD Up
(the router has yet to notice, and when it does it resets that BGP session: churn in the
middle of whatever comes next), and, for every VIP, its kernel FIB holds exactly the next
hops that lead to an LB announcing that VIP (the simulator's Fabric says which: the same
model `lab traffic` predicts with).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.topology import Topology
from anycast_ctl.render.plan import neighbor_node, router_plans
from anycast_ctl.sim.fabric import Fabric

ESTABLISHED = "Established"
BFD_UP = "Up"  # FRR's peerBfdInfo.status


@dataclass
class RouterView:
    """What one router shows: session states by peer name, FIB next hops (node names, kernel
    order) by VIP name, and any next-hop address that belongs to no neighbour."""

    router: str
    sessions: dict[str, str] = field(default_factory=dict)
    bfd: dict[str, str] = field(default_factory=dict)  # peer name -> BFD status, if it has BFD
    fib: dict[str, list[str]] = field(default_factory=dict)
    unknown_gateways: list[str] = field(default_factory=list)


def address_owners(plan: AddressPlan) -> dict[str, str]:
    """Every link and loopback address of the plan -> the node that holds it."""
    owners: dict[str, str] = {}
    for node in plan.nodes.values():
        for lo in (node.loopback_v4, node.loopback_v6):
            if lo is not None:
                owners[str(lo.ip)] = node.name
        for iface in node.interfaces:
            for addr in (iface.ipv4, iface.ipv6):
                if addr is not None:
                    owners[str(addr.ip)] = node.name
    return owners


def canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))


def session_peers(topo: Topology) -> dict[str, dict[str, str]]:
    """router -> {peer address: peer name} as the router's FRR config names them."""
    return {
        router: {canonical(n.address): n.name for n in plan.neighbors}
        for router, plan in router_plans(topo).items()
    }


def expected_nexthops(topo: Topology, router: str, vip: str) -> set[str]:
    """The neighbours a healthy, converged router spreads the VIP over."""
    fabric = Fabric.from_topology(topo)
    index = [v.name for v in topo.vips].index(vip)
    return set(fabric.candidates(router, index))


def router_problems(
    topo: Topology,
    view: RouterView,
    down_lbs: frozenset[str] = frozenset(),
    bfd_lbs: frozenset[str] = frozenset(),
    bfd_stopped_lbs: frozenset[str] = frozenset(),
) -> list[str]:
    """Why `view` is not the converged state ([] when it is). LBs in `down_lbs` are expected to
    be withdrawn (drained, failed): their sessions may be anything, their next hops absent.
    The sessions of LBs in `bfd_lbs` (those running bfdd) must have their BFD session up; those
    of LBs in `bfd_stopped_lbs` (bfdd recorded but stopped) must not."""
    problems = []
    for peer in session_peers(topo)[view.router].values():
        state = view.sessions.get(peer, "absent")
        lb = neighbor_node(peer)
        if lb in down_lbs:
            continue
        if state != ESTABLISHED:
            problems.append(f"{view.router}: session to {peer} is {state}")
        elif lb in bfd_lbs and view.bfd.get(peer, "absent") != BFD_UP:
            problems.append(f"{view.router}: BFD to {peer} is {view.bfd.get(peer, 'absent')}")
        elif lb in bfd_stopped_lbs and view.bfd.get(peer) == BFD_UP:
            problems.append(f"{view.router}: BFD to {peer} is still Up though its bfdd is stopped")
    fabric = _fabric_without(topo, down_lbs)
    for i, vip in enumerate(topo.vips):
        want = set(fabric.candidates(view.router, i))
        have = view.fib.get(vip.name, [])
        if set(have) != want or len(have) != len(want):
            problems.append(
                f"{view.router}: {vip.name} ({vip.address}) via {', '.join(have) or 'nothing'}; "
                f"expected {', '.join(sorted(want)) or 'nothing'}"
            )
    if view.unknown_gateways:
        problems.append(
            f"{view.router}: next hops outside the topology: {', '.join(view.unknown_gateways)}"
        )
    return problems


def _fabric_without(topo: Topology, down_lbs: frozenset[str]) -> Fabric:
    fabric = Fabric.from_topology(topo)
    if not down_lbs:
        return fabric
    announces = {
        lb: (frozenset() if lb in down_lbs else vips) for lb, vips in fabric.announces.items()
    }
    return replace(fabric, announces=announces)


def summary(problems: list[str], first: int = 5) -> str:
    """The first few problems and how many there are in all: with 1,000 VIPs on 3 routers an
    unconverged lab has thousands, and one error line must stay readable."""
    if len(problems) <= first:
        return "; ".join(problems)
    shown = "; ".join(problems[:first])
    return f"{shown}; and {len(problems) - first} more ({len(problems)} problems)"
