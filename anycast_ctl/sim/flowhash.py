"""A fast seeded hash of the 5-tuple, for every algorithm except the kernel-exact `linux` one.

Real routers each have their own hash function; what matters for the simulator is that the
hash is uniform, that a router's seed changes it completely, and that two routers with the
same seed compute the same value for a flow (that is what polarizes two tiers). The murmur3
64-bit finalizer gives that with a dozen numpy passes per word.

Stable keys for names (next hops in rendezvous and Maglev) come from BLAKE2b, never from
Python's `hash()`, which changes between runs.
"""

from __future__ import annotations

import hashlib

import numpy as np

from anycast_ctl.sim.flowarrays import FlowArrays

_U64 = np.uint64
_M1 = _U64(0xFF51AFD7ED558CCD)
_M2 = _U64(0xC4CEB9FE1A85EC53)
_S33 = _U64(33)


def fmix64(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finalizer, in place on a uint64 array (returned for chaining)."""
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h


def stable_key(*parts: object) -> int:
    """A 64-bit integer from names and numbers, the same on every run and machine."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _words(flows: FlowArrays) -> list[np.ndarray]:
    n = len(flows)
    ports = (
        (flows.proto.astype(_U64) << _U64(32))
        | (flows.sport.astype(_U64) << _U64(16))
        | flows.dport.astype(_U64)
    )
    if flows.family == 4:
        return [(flows.src.astype(_U64) << _U64(32)) | flows.dst.astype(_U64), ports]
    if n == 0:
        return [ports]
    return [flows.src[:, 0], flows.src[:, 1], flows.dst[:, 0], flows.dst[:, 1], ports]


def flow_hash64(flows: FlowArrays, seed: int) -> np.ndarray:
    """Seeded 64-bit hash of each flow's (src, dst, proto, sport, dport)."""
    h = np.full(len(flows), stable_key("flow-hash", seed), dtype=_U64)
    for word in _words(flows):
        h ^= word
        fmix64(h)
    return h


def flow_hash32(flows: FlowArrays, seed: int) -> np.ndarray:
    """The top 32 bits of `flow_hash64`: the value routers split into regions, buckets, slots."""
    return (flow_hash64(flows, seed) >> _U64(32)).astype(np.uint32)
