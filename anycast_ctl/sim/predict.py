"""Which LB node (and which path) each given flow reaches: the answer `lab traffic` checks.

    from anycast_ctl.sim.predict import predict_lbs
    lbs = predict_lbs(topo, flows)                      # FlowArrays of one family
    lbs = predict_lbs(topo, flows, nexthop_order={"r1": ["lb2", "lb1", "lb3"]})
    after = predict_lbs(topo, flows, events=["withdraw:lb1"])
    lbs = predict_held(topo, tuples, {"web": {"r1": ["lb3", "lb1"]}})  # as the FIBs hold them

Each flow's client is found by its source address (a client prefix) and its VIP by its
destination. For routers with `algorithm: linux` the prediction is the kernel's own choice,
provided the router's next hops are given in the kernel's order (`ip route show` lists them
in that order); by default the order is the topology's link order. `predict_held` takes what
each router's kernel holds per VIP (the members and their order, as read from a live FIB):
what `lab traffic` and the lab's failover experiments check flows against.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from anycast_ctl.config.topology import Topology
from anycast_ctl.sim.fabric import Event, Fabric, apply, parse_event
from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.flows import attach
from anycast_ctl.sim.network import NO_PATH, Plan, route


def _route(
    topo: Topology,
    flows: FlowArrays,
    nexthop_order: dict[str, list[str]] | None,
    events: Sequence[str | Event],
) -> tuple[Plan, np.ndarray]:
    fabric = Fabric.from_topology(topo, nexthop_order=nexthop_order)
    plan = Plan(fabric)
    for event in events:
        event = parse_event(event, topo) if isinstance(event, str) else event
        fabric = apply(fabric, event)
        plan = Plan(fabric, base=plan)
    return plan, route(plan, attach(topo, flows))


def predict_paths(
    topo: Topology,
    flows: FlowArrays,
    *,
    nexthop_order: dict[str, list[str]] | None = None,
    events: Sequence[str | Event] = (),
) -> list[tuple[str, ...]]:
    """Per flow, the nodes it crosses: its routers tier by tier, then its LB (shorter if dropped).

    `events` are applied in order (e.g. ["withdraw:lb1"]); a resilient table evolves through
    them as it would on the router. Raises ValueError (flows.FlowMismatch) for a flow whose
    source is in no client prefix or whose destination is not a VIP, and for a bad event.
    """
    plan, hops = _route(topo, flows, nexthop_order, events)
    return [tuple(plan.nodes[i] for i in column if i != NO_PATH) for column in hops.T.tolist()]


def predict_lbs(
    topo: Topology,
    flows: FlowArrays,
    *,
    nexthop_order: dict[str, list[str]] | None = None,
    events: Sequence[str | Event] = (),
) -> list[str | None]:
    """Per flow, the LB node it reaches (None when it has no path)."""
    plan, hops = _route(topo, flows, nexthop_order, events)
    return [plan.nodes[i] if i != NO_PATH else None for i in hops[-1].tolist()]


FlowTuple = tuple[str, str, int, int, int]  # (src, dst, proto, sport, dport)
# vip -> router -> the next hops the router's FIB holds for that VIP, in the kernel's order
HeldNexthops = Mapping[str, Mapping[str, Sequence[str]]]


def held_fabric(topo: Topology, held: Mapping[str, Sequence[str]]) -> Fabric:
    """The converged fabric with each router of `held` holding exactly those next hops, in that
    order (a subset of its downstream neighbours: a withdrawn node is simply absent). Routers
    missing from `held` keep the topology's."""
    fabric = Fabric.from_topology(topo)
    for router, hops in held.items():
        unknown = set(hops) - set(fabric.nexthops.get(router, ()))
        if unknown or len(set(hops)) != len(hops):
            raise ValueError(
                f"next hops held by {router} must be distinct downstream neighbours: {list(hops)}"
            )
    nexthops = {**fabric.nexthops, **{r: tuple(h) for r, h in held.items()}}
    return replace(fabric, nexthops=nexthops)


def predict_held(
    topo: Topology, flows: Sequence[FlowTuple], held: HeldNexthops
) -> list[str | None]:
    """Per flow, the LB it reaches when every router holds, for the flow's VIP, the next hops
    `held[vip][router]` in that order (None: no path). Flows of any VIP and family may be
    mixed; each flow's VIP is found by its destination address."""
    by_address = {ipaddress.ip_address(v.ip): v.name for v in topo.vips}
    groups: dict[str, list[int]] = {}
    for i, flow in enumerate(flows):
        vip = by_address.get(ipaddress.ip_address(flow[1]))
        if vip is None:
            raise ValueError(f"flow {i}: destination {flow[1]} is not a VIP of the topology")
        groups.setdefault(vip, []).append(i)
    predicted: list[str | None] = [None] * len(flows)
    for vip, indices in groups.items():
        plan = Plan(held_fabric(topo, held.get(vip, {})))
        arrays = FlowArrays.from_tuples(flows[i] for i in indices)
        last = route(plan, attach(topo, arrays))[-1].tolist()
        for i, node in zip(indices, last, strict=True):
            predicted[i] = plan.nodes[node] if node != NO_PATH else None
    return predicted
