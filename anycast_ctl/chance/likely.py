"""The likely previous owners of the flows a node gains when the set of announcing LB nodes
changes from `before` to `after` (pure): the kernel-exact model over a sample of flows.

With hash-threshold ECMP a node's new share of the hash space overlaps one or two old
shares, so forwarding to the first likely owner reaches the owner in one hop
(docs/second-chance.md). Several changes in a row (a rolling upgrade): the owners under
each older set come after the newest's.

Only the first few owners reach the table (`hop_limit` of them), so `owners` stops at the
change that supplies them; the agent computes ahead the changes one node leaving or joining
would make (`next_sets`), so its table follows a peer's change within the routers' reaction
time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace
from functools import lru_cache

import numpy as np

from anycast_ctl.config.topology import Topology
from anycast_ctl.sim.fabric import Fabric
from anycast_ctl.sim.flows import FlowBatch, generate
from anycast_ctl.sim.network import NO_PATH, HashCache, Plan, route
from anycast_ctl.sim.owners import OwnerChange, owner_candidates

SAMPLE_FLOWS = 20_000


def next_sets(now: frozenset[str], nodes: Iterable[str]) -> list[frozenset[str]]:
    """The announced sets one node leaving `now`, or one of `nodes` joining it, would make."""
    leaving = [now - {lb} for lb in sorted(now)] if len(now) > 1 else []
    return leaving + [now | {lb} for lb in sorted(set(nodes) - now)]


class Likely:
    def __init__(self, topo: Topology) -> None:
        self.fabric = Fabric.from_topology(topo)
        # One family's sample (IPv4 first): a dual-stack topology's tables share one chain.
        # The IPv6 routes' nexthop order can differ (dual-stack.yaml: lb2 rejoining gains
        # first from lb3 in IPv4, from lb1 in IPv6); per-family chains are not built.
        self.batch = next(generate(topo, SAMPLE_FLOWS, seed=1))
        self.cache = HashCache(self.batch.flows)
        self.candidates = lru_cache(maxsize=256)(self._candidates)
        self._owner_index = lru_cache(maxsize=64)(self._index_of)

    def _only(self, announcing: frozenset[str]) -> Fabric:
        none: frozenset[int] = frozenset()
        announces = {lb: v if lb in announcing else none for lb, v in self.fabric.announces.items()}
        return replace(self.fabric, announces=announces)

    def _index(self, p: Plan) -> np.ndarray:
        last = route(p, self.batch, self.cache)[-1].astype(np.int64)
        first = p.first_lb_id
        return np.where(last == NO_PATH, NO_PATH, last - first)

    def _index_of(self, announcing: frozenset[str]) -> tuple[Plan, np.ndarray]:
        """The owner of each sample flow while `announcing` is the set (no earlier state)."""
        p = Plan(self._only(announcing))
        return p, self._index(p)

    def _candidates(
        self, before: frozenset[str], after: frozenset[str], node: str
    ) -> tuple[str, ...]:
        if before == after or node not in after:
            return ()
        before_plan, before_index = self._owner_index(before)
        after_plan = Plan(self._only(after), base=before_plan)
        batch: FlowBatch = self.batch
        change = OwnerChange(self.fabric.lbs, before_index, self._index(after_plan), batch)
        return owner_candidates(change, node)

    def owners(
        self,
        history: tuple[frozenset[str], ...],
        node: str,
        enough: int | None = None,
        among: Collection[str] = (),
    ) -> tuple[str, ...]:
        """Newest change first: the owners under each older announced set of `history`.

        With `enough`, older changes are left out once `enough` owners in `among` (the nodes
        that can be asked) are found: they are all a table of `enough` hops uses."""
        if not history:
            return ()
        now = history[-1]
        out: dict[str, None] = {}
        for older in reversed(history[:-1]):
            out.update(dict.fromkeys(self.candidates(older, now, node)))
            if enough is not None and sum(lb in among and lb != node for lb in out) >= enough:
                break
        return tuple(out)
