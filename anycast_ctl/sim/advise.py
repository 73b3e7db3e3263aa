"""`sim advise`: what in a topology's hashing breaks long-lived connections, measured, with the fix.

Every LB node is a full TCP proxy, so a flow that a router sends to another LB node is a broken
connection. For each finding the simulator routes the same flows through the topology as it is
and as the fix would make it, before and after the events the finding is about:

- `tier-seeds-differ`: routers of one tier hash with different settings, so when one fails (or
  goes for maintenance) the others re-hash its flows onto other LB nodes;
- `nexthop-order`: routers of one tier list the same next hops in different orders, which does
  the same with equal seeds;
- `polarization`: a tier hashes like an earlier one and leaves next hops unused;
- `lb-withdrawal`: what withdrawing each LB node moves, its own flows and the collateral ones;
- `router-withdrawal`: what each router of a tier with several moves or loses when it goes.

Figures are fractions of all flows. Pure: flows come from a callable (each call yields the same
flows), nothing is read or printed here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from anycast_ctl.config.topology import Algorithm, Topology
from anycast_ctl.sim.advise_findings import (
    nexthop_order_findings,
    polarization_findings,
    tier_hashing_findings,
)
from anycast_ctl.sim.advise_fixes import hashing_fix, order_fix
from anycast_ctl.sim.advise_model import Finding, Runs
from anycast_ctl.sim.advise_withdrawals import (
    lb_facing,
    lb_withdrawal_findings,
    router_withdrawal_findings,
)
from anycast_ctl.sim.fabric import Event, Fabric
from anycast_ctl.sim.flows import BLOCK, FlowBatch
from anycast_ctl.sim.run import simulate_variants

__all__ = ["Advice", "Finding", "FlowSource", "advise", "measure"]

FlowSource = Callable[[], Iterable[FlowBatch]]
# Algorithms whose next-hop choice survives a withdrawal for every other flow.
MINIMAL_DISRUPTION = {Algorithm.RESILIENT, Algorithm.RENDEZVOUS}


@dataclass(frozen=True)
class Advice:
    topology: str
    flows: int  # flows routed per variant and event
    findings: list[Finding]


def advise(topo: Topology, flows: FlowSource, chunk: int = BLOCK) -> Advice:
    """Every finding, each measured on the same flows as the topology is and as fixed."""
    runs = measure(topo, flows, chunk)
    findings = [
        *tier_hashing_findings(runs),
        *nexthop_order_findings(runs),
        *polarization_findings(runs),
        *lb_withdrawal_findings(runs),
        *router_withdrawal_findings(runs),
    ]
    return Advice(topo.name, runs.results["now"].flows, findings)


def measure(topo: Topology, flows: FlowSource, chunk: int = BLOCK) -> Runs:
    hfix, ofix = hashing_fix(topo), order_fix(topo)
    withdrawals = [Event("withdraw", lb.name) for lb in topo.lbs]
    failures = [
        Event("router", r)
        for tier in topo.tiers
        if len(topo.routers_in(tier)) > 1
        for r in topo.routers_in(tier)
    ]
    fabrics = {"now": Fabric.from_topology(topo)}
    if hfix.changes:
        fabrics["hashing"] = Fabric.from_topology(hfix.topology)
    if ofix:
        fabrics["order"] = Fabric.from_topology(topo, nexthop_order=ofix)
    if hfix.changes and ofix:
        fabrics["all"] = Fabric.from_topology(hfix.topology, nexthop_order=ofix)
    results = simulate_variants(fabrics, flows(), [*withdrawals, *failures], chunk)
    resilient = None
    facing = lb_facing(topo)
    if any(topo.hashing_for(r).algorithm not in MINIMAL_DISRUPTION for r in facing) and all(
        len(topo.downstream(r)) <= topo.hashing_for(r).buckets for r in facing
    ):  # the comparison: resilient groups, where their bucket table can hold the next hops
        alt = {"resilient": Fabric.from_topology(topo, algorithm=Algorithm.RESILIENT.value)}
        resilient = simulate_variants(alt, flows(), withdrawals, chunk)["resilient"]
    return Runs(topo, hfix, ofix, results, resilient)
