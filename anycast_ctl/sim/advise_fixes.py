"""The changes `sim advise` proposes, as edits of a topology that the simulator can measure.

- **One hashing per tier.** Routers of one tier that hash alike (same algorithm, seed, policy and
  fields) send a flow to the same next hop, so when one of them fails its siblings carry its
  flows to the LB nodes they were already on. The tier takes the hashing most of its routers
  use (the first router's on a tie).
- **Tiers apart.** A tier that would then hash like an earlier one gets a seed of its own:
  otherwise its routers see only the slice of the hash space the earlier tier gave them
  (polarization).
- **One next-hop order per tier.** Hash-threshold maps a flow to a position in the next-hop
  list; siblings must list shared next hops in one order (the order most of them use).

Nothing here routes a flow; `advise.py` measures what each change is worth.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from anycast_ctl.config.topology import Algorithm, Hashing, Topology

# The fields that decide which next hop a router picks for a flow, apart from its next hops
# and their weights (weights are a capacity choice, not a hashing one).
HASH_FIELDS = ("algorithm", "seed", "policy", "fields", "buckets", "table_size")
SEED_STEP = 0x1000  # a fresh seed: the tier's own plus a multiple of this, unused elsewhere
SEED_SPACE = 1 << 32

Signature = tuple[str, int, int, int]


def signature(h: Hashing) -> Signature:
    """What a router's next-hop choice depends on besides its next hops: equal means alike.

    Policy and fields matter only to the kernel model; bucket count and table size only to the
    resilient and Maglev tables (folded into the last slot).
    """
    algorithm = Algorithm(h.algorithm)
    if algorithm is Algorithm.LINUX:
        return (algorithm.value, h.seed, h.policy, h.fields)
    extra = {Algorithm.RESILIENT: h.buckets, Algorithm.MAGLEV: h.table_size}.get(algorithm, 0)
    return (algorithm.value, h.seed, 0, extra)


def differing_fields(topo: Topology, routers: list[str]) -> dict[str, dict[str, str]]:
    """field -> router -> value, for the hashing fields on which the routers disagree."""
    hashings = {r: topo.hashing_for(r) for r in routers}
    linux = all(h.algorithm == Algorithm.LINUX for h in hashings.values())
    fields = ("algorithm", "seed", "policy", "fields") if linux else HASH_FIELDS
    out: dict[str, dict[str, str]] = {}
    for f in fields:
        values = {r: show(f, getattr(h, f)) for r, h in hashings.items()}
        if len(set(values.values())) > 1:
            out[f] = values
    return out


def show(field: str, value: object) -> str:
    """A hashing value as the topology file would spell it."""
    if field in ("seed", "fields") and isinstance(value, int):
        return hex(value)
    return str(value)


@dataclass(frozen=True)
class HashingFix:
    topology: Topology  # the topology with the fix applied
    changes: dict[str, dict[str, object]]  # router -> field -> new value (only what changes)
    fresh_seed: dict[str, int]  # tier -> the seed it gets to stay apart from an earlier tier
    apart_from: dict[str, str]  # tier -> the earlier tier it would otherwise hash like

    def for_routers(self, routers: list[str]) -> dict[str, dict[str, object]]:
        return {r: c for r, c in self.changes.items() if r in routers}


def hashing_fix(topo: Topology) -> HashingFix:
    """Every tier hashing one way, and no two tiers alike."""
    changes: dict[str, dict[str, object]] = {}
    fresh: dict[str, int] = {}
    apart: dict[str, str] = {}
    taken: dict[Signature, str] = {}  # signature -> the tier that uses it
    for tier in topo.tiers:
        routers = topo.routers_in(tier)
        hashings = {r: topo.hashing_for(r) for r in routers}
        common, _ = Counter(signature(h) for h in hashings.values()).most_common(1)[0]
        reference = next(h for h in hashings.values() if signature(h) == common)
        target = {f: getattr(reference, f) for f in HASH_FIELDS}
        if common in taken:
            apart[tier] = taken[common]
            seeds = {s[1] for s in taken}
            target["seed"] = fresh[tier] = _fresh_seed(reference.seed, seeds)
        taken[signature(reference.model_copy(update={"seed": target["seed"]}))] = tier
        for r, h in hashings.items():
            diff = {f: v for f, v in target.items() if getattr(h, f) != v}
            if diff:
                changes[r] = diff
    return HashingFix(_with_hashing(topo, changes), changes, fresh, apart)


def _fresh_seed(seed: int, taken: set[int]) -> int:
    k = 1
    while True:
        candidate = (seed + k * SEED_STEP) % SEED_SPACE
        if candidate != 0 and candidate not in taken:
            return candidate
        k += 1


def _with_hashing(topo: Topology, changes: dict[str, dict[str, object]]) -> Topology:
    if not changes:
        return topo
    routers = []
    for r in topo.routers:
        if r.name in changes:
            own = r.hashing if r.hashing is not None else Hashing()
            # model_copy marks the updated fields as set, so they override the topology's
            r = r.model_copy(update={"hashing": own.model_copy(update=changes[r.name])})
        routers.append(r)
    return topo.model_copy(update={"routers": routers})


def order_fix(topo: Topology) -> dict[str, list[str]]:
    """Router -> its next hops reordered like its tier's usual order (only routers that differ).

    Next hops a router shares with the reference order come in that order; the others keep
    their own order, after them.
    """
    out: dict[str, list[str]] = {}
    for tier in topo.tiers:
        routers = topo.routers_in(tier)
        orders = {r: topo.downstream(r) for r in routers}
        common, _ = Counter(tuple(o) for o in orders.values()).most_common(1)[0]
        rank = {n: i for i, n in enumerate(common)}
        for r, own in orders.items():
            shared_here = [n for n in own if n in rank]
            if shared_here == [n for n in common if n in own]:
                continue
            position = {n: i for i, n in enumerate(own)}
            out[r] = sorted(own, key=lambda n: (rank.get(n, len(rank)), position[n]))
    return out


def reachable(topo: Topology, router: str) -> set[str]:
    """Routers downstream of `router`, at any depth."""
    seen: set[str] = set()
    todo = [router]
    while todo:
        for n in topo.downstream(todo.pop()):
            if topo.kind(n) == "router" and n not in seen:
                seen.add(n)
                todo.append(n)
    return seen
