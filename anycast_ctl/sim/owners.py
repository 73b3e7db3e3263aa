"""Second chance, pure core: where a flow went before a change, and whom to ask when unsure.

After an event (an LB node withdrawn, drained, added; a router or link gone) the routers send
some established flows to an LB node that has no socket for them. That node forwards such a
packet to the flow's *previous owner*: the node the routers picked before the event. With the
kernel-exact model (`sim/linux.py`) and the routers' settings and next-hop order, the previous
owner of every flow is known, flow by flow:

    change = owner_change(Fabric.from_topology(topo), Event("withdraw", "lb1"), batch)
    change.moved, change.collateral(...)          # masks per flow
    entries = forward_entries(change, "lb2")      # flows lb2 now receives but lb1/lb3 own

Where the routers' hashing cannot be predicted (not the `linux` algorithm, or seed 0: a random
key per boot), `unpredictable()` says why, and a node uses `fallback_chain()` instead: the
other live nodes in a fixed order, at most `hop_limit` of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anycast_ctl.config.topology import Algorithm, Topology

# Defined where the agent imports them without numpy; part of this module's interface.
from anycast_ctl.sim.chain import (
    HOP_LIMIT_MAX as HOP_LIMIT_MAX,
    FlowKey as FlowKey,
    ForwardEntry as ForwardEntry,
    fallback_chain as fallback_chain,
)
from anycast_ctl.sim.fabric import Event, Fabric, apply
from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.flows import FlowBatch, FlowMismatch, attach
from anycast_ctl.sim.network import NO_PATH, HashCache, Plan, route


@dataclass(frozen=True)
class OwnerChange:
    """Per flow of one batch: its LB node before and after an event (indices into `lbs`)."""

    lbs: tuple[str, ...]
    before: np.ndarray  # int64, NO_PATH where the flow had no path
    after: np.ndarray  # int64, NO_PATH where it has none now
    batch: FlowBatch

    @property
    def moved(self) -> np.ndarray:
        """Flows that had a node and now land on another one: each needs a second chance."""
        moved: np.ndarray = (
            (self.before != NO_PATH) & (self.after != NO_PATH) & (self.before != self.after)
        )
        return moved

    def own(self, nodes: frozenset[str]) -> np.ndarray:
        """Moved flows whose previous owner is one of `nodes` (the event's own flows)."""
        ids = [i for i, lb in enumerate(self.lbs) if lb in nodes]
        own: np.ndarray = self.moved & np.isin(self.before, ids)
        return own

    def collateral(self, nodes: frozenset[str]) -> np.ndarray:
        """Moved flows between nodes the event does not touch."""
        collateral: np.ndarray = self.moved & ~self.own(nodes)
        return collateral


def owner_change(fabric: Fabric, event: Event, batch: FlowBatch) -> OwnerChange:
    """Route the batch before and after `event` (BGP converged) and keep each flow's LB node."""
    before_plan = Plan(fabric)
    after_plan = Plan(apply(fabric, event), base=before_plan)
    cache = HashCache(batch.flows)
    lbs = after_plan.fabric.lbs  # an event only appends LB nodes: ids mean the same node
    first = before_plan.first_lb_id

    def lb_index(plan: Plan) -> np.ndarray:
        last = route(plan, batch, cache)[-1].astype(np.int64)
        return np.where(last == NO_PATH, NO_PATH, last - first)

    return OwnerChange(lbs, lb_index(before_plan), lb_index(after_plan), batch)


def forward_entries(change: OwnerChange, node: str) -> list[ForwardEntry]:
    """The flows `node` receives after the change but does not own: each to its owner.

    Only TCP flows are listed (the second chance is for TCP connections); the order is the
    batch's, so a rendering from it is stable.
    """
    here = change.lbs.index(node)
    f = change.batch.flows
    rows = np.flatnonzero(change.moved & (change.after == here) & (f.proto == 6))
    src, dst = f.address_strings("src"), f.address_strings("dst")
    sport, dport, before = f.sport.tolist(), f.dport.tolist(), change.before.tolist()
    return [
        ForwardEntry((src[i], int(sport[i]), dst[i], int(dport[i])), change.lbs[int(before[i])])
        for i in rows.tolist()
    ]


def owner_candidates(change: OwnerChange, node: str) -> tuple[str, ...]:
    """The previous owners of the flows `node` gains, most flows first.

    Computed over the batch, this needs no list of live connections: with hash-threshold
    ECMP a node's new share of the hash space overlaps the old shares of one or two nodes
    (withdrawing lb1 of 3: lb2 gains only lb1's flows, lb3 only lb2's), so a node that
    forwards an unknown flow to its first candidate reaches the owner in one hop.
    """
    here = change.lbs.index(node)
    before = change.before[change.moved & (change.after == here)]
    counts = np.bincount(before, minlength=len(change.lbs)).tolist()
    ranked = sorted((i for i, c in enumerate(counts) if c), key=lambda i: (-counts[i], i))
    return tuple(change.lbs[i] for i in ranked)


def candidate_coverage(change: OwnerChange, hop_limit: int = 1) -> float:
    """Fraction of the moved flows whose owner is among the first `hop_limit` likely owners
    of the node they now reach: what the chain alone keeps, with no list of flows (1.0 when
    nothing moves)."""
    moved = change.moved
    if not moved.any():
        return 1.0
    reached = 0
    for k, lb in enumerate(change.lbs):
        ids = [change.lbs.index(c) for c in owner_candidates(change, lb)[:hop_limit]]
        reached += int((moved & (change.after == k) & np.isin(change.before, ids)).sum())
    return reached / int(moved.sum())


def owned_batch(topo: Topology, flows: list[FlowKey]) -> FlowBatch:
    """A node's connections (client, port, VIP, port) as TCP flows of one batch (one family).

    Raises ValueError for a mix of families or a flow that fits no client prefix or VIP.
    """
    arrays = FlowArrays.from_tuples([(s, d, 6, sp, dp) for s, sp, d, dp in flows])
    try:
        return attach(topo, arrays)
    except FlowMismatch as exc:
        raise ValueError(str(exc)) from None


def unpredictable(topo: Topology, routers: list[str] | None = None) -> list[str]:
    """Why the previous owner of a flow cannot be computed, one reason per router (none: it can).

    Only the `linux` algorithm is the kernel's own choice; the others model what a router
    could do, not what these routers do. Seed 0 is a random key chosen at boot.
    """
    reasons = []
    for r in routers if routers is not None else [r.name for r in topo.routers]:
        h = topo.hashing_for(r)
        if Algorithm(h.algorithm) is not Algorithm.LINUX:
            reasons.append(
                f"router {r}: hashing algorithm {Algorithm(h.algorithm).value} is a model, "
                "not the kernel's own choice (use algorithm linux with the router's sysctls)"
            )
        elif h.seed == 0:
            reasons.append(
                f"router {r}: seed 0 means a random key chosen at boot "
                "(set net.ipv4.fib_multipath_hash_seed and the topology's seed)"
            )
        elif h.policy == 1:
            reasons.append(
                f"router {r}: policy 1 routes a packet by the L4 hash its sender attached, "
                "when there is one (use policy 3 with fields 0x37)"
            )
    return reasons
