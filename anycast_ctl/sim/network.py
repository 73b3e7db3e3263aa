"""Walk flows through a fabric, tier by tier, with each router's own selector and hash.

`Plan` builds a selector for every (router, VIP) ECMP set. A plan for the fabric after an event
is built from the plan before it (`Plan(after, base=before)`), so stateful selectors (the
resilient bucket table) evolve from their old state instead of starting afresh.

`route()` returns every flow's hops: row t is the node the flow is at after t routers (row 0
its first router, the last row its LB node), -1 once the flow has no path. Node ids are
positions in `plan.nodes`: the routers, then the LB nodes, and an event only ever appends an LB,
so ids mean the same node before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from anycast_ctl.sim.algorithms import Selector, linux_settings, make_selector
from anycast_ctl.sim.fabric import Fabric
from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.flowhash import flow_hash32
from anycast_ctl.sim.flows import FlowBatch
from anycast_ctl.sim.linux import LinuxHashSettings, flow_hash as linux_flow_hash

NO_PATH = -1
# ("generic", seed) or ("linux", LinuxHashSettings): routers with equal keys hash alike.
HashKey: TypeAlias = tuple[str, int | LinuxHashSettings]


@dataclass(frozen=True)
class Hop:
    """One router's ECMP set for one VIP."""

    selector: Selector
    hash_key: HashKey
    member_ids: np.ndarray  # node id of each selector member


class Plan:
    def __init__(self, fabric: Fabric, base: Plan | None = None):
        self.fabric = fabric
        self.nodes = (*fabric.routers, *fabric.lbs)
        self.node_id = {name: i for i, name in enumerate(self.nodes)}
        self.tiers = [
            [self.node_id[r] for r in fabric.topology.routers_in(t)] for t in fabric.topology.tiers
        ]
        self.hops: dict[str, dict[int, Hop]] = {}
        for router in fabric.routers:
            h = fabric.hashing[router]
            key = ("linux", linux_settings(h)) if h.algorithm == "linux" else ("generic", h.seed)
            per_vip = {}
            for v in range(len(fabric.topology.vips)):
                members = fabric.candidates(router, v)
                if not members:
                    continue
                weights = [h.weights.get(m, 1) for m in members]
                previous = base.hops.get(router, {}).get(v) if base is not None else None
                if previous is not None and previous.hash_key == key:
                    same = (
                        previous.selector.members == members
                        and previous.selector.weights == tuple(weights)
                    )
                    selector = (
                        previous.selector if same else previous.selector.evolve(members, weights)
                    )
                else:
                    selector = make_selector(h, members, weights)
                ids = np.array([self.node_id[m] for m in members], dtype=np.int32)
                per_vip[v] = Hop(selector, key, ids)
            self.hops[router] = per_vip

    @property
    def first_lb_id(self) -> int:
        return len(self.fabric.routers)


class HashCache:
    """Each distinct hash of one batch of flows is computed once, whoever asks for it.

    Routers that share a seed (or Linux settings) share the value: that is polarization.
    """

    def __init__(self, flows: FlowArrays):
        self.flows = flows
        self._values: dict[HashKey, np.ndarray] = {}

    def get(self, key: HashKey) -> np.ndarray:
        if key not in self._values:
            _, param = key
            self._values[key] = (
                linux_flow_hash(self.flows, param)
                if isinstance(param, LinuxHashSettings)
                else flow_hash32(self.flows, param)
            )
        return self._values[key]


def route(plan: Plan, batch: FlowBatch, cache: HashCache | None = None) -> np.ndarray:
    """Hops of every flow, shape (tiers + 1, flows), node ids (NO_PATH where a flow is dropped)."""
    cache = cache or HashCache(batch.flows)
    n, tiers = len(batch), len(plan.tiers)
    hops = np.full((tiers + 1, n), NO_PATH, dtype=np.int32)
    ingress = np.array(
        [plan.node_id[r] if r is not None else NO_PATH for r in plan.fabric.ingress], dtype=np.int32
    )
    hops[0] = ingress[batch.client]
    several_vips = len(plan.fabric.topology.vips) > 1
    for t, routers in enumerate(plan.tiers):
        here = hops[t]
        for rid in routers:
            at = np.flatnonzero(here == rid)
            if not len(at):
                continue
            for v, hop in plan.hops[plan.nodes[rid]].items():
                rows = at[batch.vip[at] == v] if several_vips else at
                if len(rows):
                    hops[t + 1, rows] = hop.member_ids[
                        hop.selector.pick(cache.get(hop.hash_key)[rows])
                    ]
    return hops
