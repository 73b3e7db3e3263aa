"""Next-hop selection algorithms, vectorized over an array of flow hashes.

A `Selector` holds one router's next hops (names, in the router's order) and their weights,
and maps each flow hash to an index into them. `evolve()` gives the selector after the set of
next hops changes; stateless schemes simply rebuild, the resilient table carries its buckets
over, which is exactly what makes it resilient. Comparing `pick()` before and after an
`evolve()` on the same hashes is how the simulator measures disruption.

Hashes: every selector except `LinuxSelector` takes the 32-bit seeded hash of
`flowhash.flow_hash32`; `LinuxSelector` takes the kernel's 31-bit multipath hash
(`linux.flow_hash`). `Selector.hash_kind` says which.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from anycast_ctl.config.topology import Algorithm, Hashing
from anycast_ctl.sim.flowhash import fmix64, stable_key
from anycast_ctl.sim.linux import LinuxHashSettings, upper_bounds

_U64 = np.uint64


class Selector(ABC):
    hash_kind = "generic"

    def __init__(self, members: Sequence[str], weights: Sequence[int]):
        if not members or len(members) != len(weights):
            raise ValueError("a selector needs at least one next hop and one weight per next hop")
        self.members = tuple(members)
        self.weights = tuple(int(w) for w in weights)

    @abstractmethod
    def pick(self, hashes: np.ndarray) -> np.ndarray:
        """Index into `members` for every hash."""

    def evolve(self, members: Sequence[str], weights: Sequence[int]) -> Selector:
        """The selector once the next hops are `members` (stateless schemes just rebuild)."""
        return type(self)(members, weights, **self._params())

    def _params(self) -> dict[str, object]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.members)}, {list(self.weights)})"


class ModuloSelector(Selector):
    """hash mod N (weights repeat a next hop's slot): any change reshuffles almost everything."""

    def __init__(self, members: Sequence[str], weights: Sequence[int]):
        super().__init__(members, weights)
        self._slots = np.repeat(np.arange(len(self.members), dtype=np.int64), self.weights)

    def pick(self, hashes: np.ndarray) -> np.ndarray:
        return self._slots[hashes % np.uint32(len(self._slots))]


def _region_bounds(weights: Sequence[int], space: int) -> np.ndarray:
    total, running, out = sum(weights), 0, []
    for w in weights:
        running += w
        out.append(running * space // total - 1)
    return np.array(out, dtype=np.int64)


class HashThresholdSelector(Selector):
    """RFC 2992: the hash space is cut into consecutive regions, one per next hop (by weight)."""

    def __init__(self, members: Sequence[str], weights: Sequence[int]):
        super().__init__(members, weights)
        self._bounds = _region_bounds(self.weights, 1 << 32)

    def pick(self, hashes: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._bounds, hashes, side="left")


class RendezvousSelector(Selector):
    """RFC 2991 highest random weight: every next hop scores every flow; the best score wins.

    Removing a next hop moves only the flows it won. Weights use the logarithmic method
    (score = -w / ln u), which gives each next hop a share proportional to its weight.
    """

    def __init__(self, members: Sequence[str], weights: Sequence[int]):
        super().__init__(members, weights)
        self._keys = [_U64(stable_key("hrw", m)) for m in self.members]
        self._weighted = len(set(self.weights)) > 1

    def _score(self, h64: np.ndarray, i: int) -> np.ndarray:
        s = fmix64(h64 ^ self._keys[i])
        if not self._weighted:
            return s
        u = ((s >> _U64(11)).astype(np.float64) + 0.5) / float(1 << 53)  # uniform in (0, 1)
        return -self.weights[i] / np.log(u)

    def pick(self, hashes: np.ndarray) -> np.ndarray:
        h64 = hashes.astype(_U64) * _U64(0x9E3779B97F4A7C15)
        best = self._score(h64, 0)
        choice = np.zeros(len(hashes), dtype=np.int64)
        for i in range(1, len(self.members)):
            score = self._score(h64, i)
            better = score > best
            choice[better] = i
            np.maximum(best, score, out=best)
        return choice


def bucket_wants(weights: Sequence[int], buckets: int) -> list[int]:
    """How many buckets each next hop should own (the kernel's nh_res_group_rebalance)."""
    total, running, prev, wants = sum(weights), 0, 0, []
    for w in weights:
        running += w
        upper = (buckets * running + total // 2) // total  # DIV_ROUND_CLOSEST
        wants.append(upper - prev)
        prev = upper
    return wants


class ResilientSelector(Selector):
    """Linux resilient nexthop group: a table of buckets, flow -> bucket hash mod size.

    A change re-homes only orphaned buckets (of a removed next hop) and the excess buckets of
    over-weight next hops, in bucket order, to under-weight next hops in group order -- as the
    kernel's upkeep does once buckets are idle. (Linux waits `idle_timer`, 120 s by default, before
    moving a busy bucket; the simulator shows the settled table.)
    """

    def __init__(
        self,
        members: Sequence[str],
        weights: Sequence[int],
        buckets: int = 128,
        table: np.ndarray | None = None,
    ):
        super().__init__(members, weights)
        if buckets < len(self.members):
            raise ValueError(f"{buckets} buckets cannot hold {len(self.members)} next hops")
        self.buckets = buckets
        start = np.full(buckets, -1, dtype=np.int64) if table is None else table
        self.table = self._settle(start)

    def _params(self) -> dict[str, object]:
        return {"buckets": self.buckets}

    def _settle(self, table: np.ndarray) -> np.ndarray:
        table = table.copy()
        wants = bucket_wants(self.weights, self.buckets)
        counts = np.bincount(table[table >= 0], minlength=len(self.members)).tolist()
        underweight = [i for i in range(len(self.members)) if counts[i] < wants[i]]
        for b in range(self.buckets):
            if not underweight:
                break
            owner = int(table[b])
            if owner >= 0 and counts[owner] <= wants[owner]:
                continue  # owned by a next hop that keeps all its buckets
            if owner >= 0:
                counts[owner] -= 1
            new = underweight[0]
            table[b] = new
            counts[new] += 1
            if counts[new] >= wants[new]:
                underweight.pop(0)
        return table

    def pick(self, hashes: np.ndarray) -> np.ndarray:
        return self.table[hashes % np.uint32(self.buckets)]

    def evolve(self, members: Sequence[str], weights: Sequence[int]) -> ResilientSelector:
        index = {m: i for i, m in enumerate(members)}
        remap = np.array([index.get(m, -1) for m in self.members] + [-1], dtype=np.int64)
        carried = remap[self.table]  # buckets of a removed next hop become orphans (-1)
        return ResilientSelector(members, weights, buckets=self.buckets, table=carried)


@lru_cache(maxsize=256)
def maglev_table(members: tuple[str, ...], weights: tuple[int, ...], size: int) -> np.ndarray:
    """Maglev's lookup table: each next hop fills its preferred free slots in turn.

    Every next hop walks its own permutation of the slots (offset + j * skip mod size, with
    size prime), taking `weight` free slots per round until the table is full. The
    permutations depend only on the names, so adding or removing one next hop leaves most
    slots where they were.
    """
    n = len(members)
    offsets = [stable_key("maglev-offset", m) % size for m in members]
    skips = [stable_key("maglev-skip", m) % (size - 1) + 1 for m in members]
    position = list(offsets)
    entry = [-1] * size
    filled = 0
    while True:
        for i in range(n):
            c, skip = position[i], skips[i]
            for _ in range(weights[i]):
                while entry[c] >= 0:
                    c += skip
                    if c >= size:
                        c -= size
                entry[c] = i
                filled += 1
                if filled == size:
                    return np.array(entry, dtype=np.int64)
            position[i] = c


class MaglevSelector(Selector):
    def __init__(self, members: Sequence[str], weights: Sequence[int], table_size: int = 65537):
        super().__init__(members, weights)
        self.table_size = table_size
        self.table = maglev_table(self.members, self.weights, table_size)

    def _params(self) -> dict[str, object]:
        return {"table_size": self.table_size}

    def pick(self, hashes: np.ndarray) -> np.ndarray:
        return self.table[hashes % np.uint32(self.table_size)]


class LinuxSelector(Selector):
    """Kernel-exact Linux multipath: hash-threshold on the kernel's own hash (see `linux.py`)."""

    hash_kind = "linux"

    def __init__(self, members: Sequence[str], weights: Sequence[int], settings: LinuxHashSettings):
        super().__init__(members, weights)
        self.settings = settings
        self._bounds = upper_bounds(self.weights)

    def _params(self) -> dict[str, object]:
        return {"settings": self.settings}

    def pick(self, hashes: np.ndarray) -> np.ndarray:
        if len(self._bounds) == 1:  # the kernel does not hash for a single path
            return np.zeros(len(hashes), dtype=np.int64)
        return np.searchsorted(self._bounds, hashes, side="left")


def linux_settings(h: Hashing) -> LinuxHashSettings:
    return LinuxHashSettings(policy=h.policy, fields=h.fields, seed=h.seed)


def make_selector(
    h: Hashing, members: Sequence[str], weights: Sequence[int] | None = None
) -> Selector:
    """The selector a router with hashing settings `h` uses over `members` (in its order)."""
    weights = list(weights) if weights is not None else [h.weights.get(m, 1) for m in members]
    algorithm = Algorithm(h.algorithm)
    if algorithm is Algorithm.MODULO:
        return ModuloSelector(members, weights)
    if algorithm is Algorithm.HASH_THRESHOLD:
        return HashThresholdSelector(members, weights)
    if algorithm is Algorithm.RENDEZVOUS:
        return RendezvousSelector(members, weights)
    if algorithm is Algorithm.RESILIENT:
        return ResilientSelector(members, weights, buckets=h.buckets)
    if algorithm is Algorithm.MAGLEV:
        return MaglevSelector(members, weights, table_size=h.table_size)
    return LinuxSelector(members, weights, linux_settings(h))


ALGORITHMS = tuple(a.value for a in Algorithm)
