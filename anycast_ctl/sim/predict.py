"""Which LB node (and which path) each given flow reaches: the answer `lab traffic` checks.

    from anycast_ctl.sim.predict import predict_lbs
    lbs = predict_lbs(topo, flows)                      # FlowArrays of one family
    lbs = predict_lbs(topo, flows, nexthop_order={"r1": ["lb2", "lb1", "lb3"]})
    after = predict_lbs(topo, flows, events=["withdraw:lb1"])

Each flow's client is found by its source address (a client prefix) and its VIP by its
destination. For routers with `algorithm: linux` the prediction is the kernel's own choice,
provided the router's next hops are given in the kernel's order (`ip route show` lists them
in that order); by default the order is the topology's link order.
"""

from __future__ import annotations

from collections.abc import Sequence

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
