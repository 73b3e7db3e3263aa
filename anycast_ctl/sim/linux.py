"""Exact model of Linux 6.x multipath next-hop selection (IPv4 and IPv6, hash-threshold).

What the kernel does (net/ipv4/route.c fib_multipath_hash, net/ipv6/route.c
rt6_multipath_hash, net/core/flow_dissector.c, net/ipv4/fib_semantics.c):

1. Zero a ``struct flow_keys`` and copy in the fields the policy selects:
   policy 0 -- addresses (IPv6 adds the flow label and next header);
   policy 1 -- addresses, protocol, ports;
   policy 3 -- what ``fib_multipath_hash_fields`` selects (0x37 = 5-tuple).
2. ``__flow_hash_consistentify``: order the addresses (IPv4 compares each address's
   in-memory bytes read as a little-endian u32; IPv6 compares bytes, memcmp) and,
   independently, the ports (in-memory bytes as a little-endian u16), so both
   directions of a flow hash alike.
3. SipHash-2-4 over the struct from ``basic`` to the end of the addresses (48 bytes for
   IPv4, 72 for IPv6) under the key ``k0 = k1 = seed << 32 | seed``; keep the low 32
   bits; 0 becomes 1.
4. Policy 3 on a packet being forwarded (the kernel has the skb) adds one step:
   ``jhash_2words(outer_hash, inner_hash, 0)``, with inner_hash 0 for packets that are
   not tunnelled. Locally generated packets (a socket's route lookup) skip it.
5. ``hash >> 1``, then the first next hop whose upper bound is >= the hash, the bounds
   being ``round((w_1 + .. + w_i) << 31 / total) - 1`` over the weights in kernel order
   (``fib_rebalance``; IPv6 ``rt6_upper_bound_set``; nexthop groups likewise).

Limits -- read before trusting a prediction:

* ``seed`` 0 means the kernel uses a random per-boot key: nothing can be predicted, so
  it is refused. Set ``net.ipv4.fib_multipath_hash_seed`` (it also keys IPv6).
* Policy 1: a forwarded packet that already carries an L4 hash (``skb->l4_hash``, set by
  e.g. a multi-queue NIC or veth from the sender's socket) is routed by that hash, not by
  the 5-tuple: such traffic cannot be predicted. Policy 3 always hashes the fields, so
  policy 3 with fields 0x37 is deterministic; use it on routers.
* Forwarded packets: ports count only for protocols the flow dissector reads ports from
  (TCP, UDP, UDP-Lite, SCTP, DCCP; ESP and AH, whose "ports" are the SPI); others hash
  port 0. Locally generated flows hash the ports as given.
* Not modelled: ICMP errors (policy 0 hashes the embedded header), fragments, tunnels
  (inner fields), IPv6 flow labels (taken as 0 -- so IPv6 policy 0, and fields with
  0x8, predict only senders that send label 0), ``fib_multipath_use_neigh``, dead or
  link-down next hops (drop them from ``weights``), locally generated IPv4 with a
  source address owned by one of the next hops' devices (the kernel prefers that next
  hop), and locally originated TCP connects without a bound source port (6.16+ hashes a
  random port then). Policy 2 (inner L3 for tunnels) is refused.
* Checked against kernel 6.18 by tests/integration/test_kernel_prediction.py (really
  forwarded frames, socket-sent datagrams and ``ip route get``); a new kernel version
  must be re-validated with that test. Asking the kernel yourself: IPv4 ``ip route get``
  hands it a synthetic packet, so with or without ``iif`` it answers like
  ``forwarded=True``; ``ip -6 route get`` never does, so it answers like ``forwarded=False``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.siphash import SipState, sip_compress, sip_finalize, sip_init, siphash24

FIELD_SRC_IP, FIELD_DST_IP, FIELD_IP_PROTO = 0x1, 0x2, 0x4
FIELD_FLOWLABEL, FIELD_SRC_PORT, FIELD_DST_PORT = 0x8, 0x10, 0x20
OUTER_MASK, ALL_MASK = 0x3F, 0xFFF
# proto_ports_offset(): protocols whose first 4 L4 bytes the dissector reads as ports.
PORT_PROTOS = frozenset({6, 17, 33, 50, 51, 132, 136})
_POLICY_FIELDS = {0: FIELD_SRC_IP | FIELD_DST_IP, 1: 0x37}
CHUNK = 32768  # flows per vectorized step: keeps the SipHash lanes in the CPU cache (measured best)
_U64 = np.uint64


@dataclass(frozen=True)
class LinuxHashSettings:
    policy: int = 3  # net.ipv4.fib_multipath_hash_policy (net.ipv6.* for IPv6): 0, 1 or 3
    fields: int = 0x37  # fib_multipath_hash_fields, used by policy 3
    seed: int = 0  # net.ipv4.fib_multipath_hash_seed; 0 = random per boot (refused on use)
    forwarded: bool = True  # packets routed through the box (True) or sent by it (False)

    def __post_init__(self) -> None:
        if self.policy == 2:
            raise ValueError("policy 2 hashes the inner headers of tunnelled packets; not modelled")
        if self.policy not in (0, 1, 3):
            raise ValueError(f"policy must be 0, 1 or 3, not {self.policy!r}")
        if not 1 <= self.fields <= ALL_MASK:
            raise ValueError(
                f"fields must be within 0x1..0xfff (the kernel's range), not {self.fields:#x}"
            )
        if not 0 <= self.seed <= 0xFFFFFFFF:
            raise ValueError(f"seed must be a 32-bit unsigned value, not {self.seed}")

    def key(self) -> int:
        """Both 64-bit SipHash key words (the kernel uses the same value twice)."""
        if self.seed == 0:
            raise ValueError(
                "seed 0 means the kernel hashes with a random key chosen at boot, so its "
                "choices cannot be predicted; set net.ipv4.fib_multipath_hash_seed to a "
                "non-zero value on the router and pass the same seed here"
            )
        return (self.seed << 32) | self.seed

    def hashed_fields(self, family: int) -> int:
        """The FIELD_* mask the policy puts into the flow keys."""
        if self.policy == 3:
            return self.fields & OUTER_MASK
        if self.policy == 0 and family == 6:  # ip6_multipath_l3_keys: + label, next header
            return FIELD_SRC_IP | FIELD_DST_IP | FIELD_FLOWLABEL | FIELD_IP_PROTO
        return _POLICY_FIELDS[self.policy]


def upper_bounds(weights: Sequence[int]) -> np.ndarray:
    """fib_rebalance(): each next hop's upper bound in the 31-bit hash space."""
    w = [int(x) for x in weights]
    if not w:
        raise ValueError("at least one next hop is needed")
    if any(not 1 <= x <= 65536 for x in w):
        raise ValueError(f"weights must be within 1..65536 (route nexthops: 1..256), got {w}")
    total = sum(w)
    bounds, running = [], 0
    for x in w:
        running += x
        bounds.append(((running << 31) + total // 2) // total - 1)
    return np.array(bounds, dtype=np.int64)


def select_nexthops(
    flows: FlowArrays, weights: Sequence[int], settings: LinuxHashSettings
) -> np.ndarray:
    """Index (into ``weights``, kernel order) of the next hop the kernel picks per flow."""
    bounds = upper_bounds(weights)
    if len(bounds) == 1:  # a single path is used without hashing
        return np.zeros(len(flows), dtype=np.int64)
    return np.searchsorted(bounds, flow_hash(flows, settings), side="left")


def flow_hash(flows: FlowArrays, settings: LinuxHashSettings) -> np.ndarray:
    """The 31-bit multipath hash per flow (``fib_multipath_hash() >> 1``), as uint32."""
    out = np.empty(len(flows), dtype=np.uint32)
    prefix = _prefix_states(settings.key())
    for start in range(0, len(flows), CHUNK):
        part = flows.chunk(start, start + CHUNK)
        out[start : start + len(part)] = _hash_chunk(part, settings, prefix)
    return out


# ---------------------------------------------------------------- vectorized path


def _prefix_states(key: int) -> SipState:
    """State after the first 24 hashed bytes for every protocol number.

    Those bytes are basic (n_proto 0, ip_proto, pad), tags (flow label, 0 here) and the
    two zeroed VLAN keys: they depend on the protocol only, so hash them 256 times once
    and gather, instead of six rounds per flow.
    """
    first = np.arange(256, dtype=_U64) << _U64(16)
    return sip_compress(sip_init(key, key, 256), [first, 0, 0])


def _bswap(a: np.ndarray, dtype: type[np.unsignedinteger]) -> np.ndarray:
    return a.astype(dtype, copy=False).byteswap()


def _hash_chunk(f: FlowArrays, s: LinuxHashSettings, prefix: SipState) -> np.ndarray:
    n = len(f)
    mask = s.hashed_fields(f.family)
    if mask == 0:  # no outer field selected: the kernel skips the hash and uses 0
        mhash = np.zeros(n, dtype=np.uint32)
    else:
        sport, dport = f.sport, f.dport
        if s.forwarded and (mask & (FIELD_SRC_PORT | FIELD_DST_PORT)):
            has_ports = np.isin(f.proto, list(PORT_PROTOS))
            sport, dport = np.where(has_ports, sport, 0), np.where(has_ports, dport, 0)
        # Ports: in-memory big-endian u16s compared as little-endian, smaller first.
        ps = _bswap(sport, np.uint16) if mask & FIELD_SRC_PORT else np.zeros(n, np.uint16)
        pd = _bswap(dport, np.uint16) if mask & FIELD_DST_PORT else np.zeros(n, np.uint16)
        lo, hi = np.minimum(ps, pd).astype(_U64), np.maximum(ps, pd).astype(_U64)
        ports_word = (lo << _U64(32)) | (hi << _U64(48))
        state = prefix.take(f.proto if mask & FIELD_IP_PROTO else np.zeros(n, np.uint8))
        if f.family == 4:
            words, length = _ipv4_addr_words(f, mask), 48
        else:
            words, length = _ipv6_addr_words(f, mask), 72
        sip_compress(state, [ports_word, *words])
        mhash = sip_finalize(state, length).astype(np.uint32)
        mhash[mhash == 0] = 1
    if s.policy == 3 and s.forwarded:
        mhash = _jhash_2words_zero(mhash)
    return mhash >> np.uint32(1)


def _ipv4_addr_words(f: FlowArrays, mask: int) -> list[np.ndarray]:
    zero = np.zeros(len(f), np.uint32)
    a = _bswap(f.src, np.uint32) if mask & FIELD_SRC_IP else zero
    b = _bswap(f.dst, np.uint32) if mask & FIELD_DST_IP else zero
    lo, hi = np.minimum(a, b).astype(_U64), np.maximum(a, b).astype(_U64)
    return [lo << _U64(32), hi]  # bytes 40..47: icmp key (0), src; 48..55: dst, pad


def _ipv6_addr_words(f: FlowArrays, mask: int) -> list[np.ndarray]:
    zero = np.zeros((len(f), 2), _U64)
    src = f.src if mask & FIELD_SRC_IP else zero
    dst = f.dst if mask & FIELD_DST_IP else zero
    # memcmp order is numeric order of (high, low); the smaller goes first.
    swap = (dst[:, 0] < src[:, 0]) | ((dst[:, 0] == src[:, 0]) & (dst[:, 1] < src[:, 1]))
    first = np.where(swap[:, None], dst, src)
    second = np.where(swap[:, None], src, dst)
    m32 = _U64(0xFFFFFFFF)

    def mid(addr: np.ndarray) -> np.ndarray:  # address bytes 4..11 as a LE word
        return _bswap(((addr[:, 0] & m32) << _U64(32)) | (addr[:, 1] >> _U64(32)), _U64)

    def word32(x: np.ndarray) -> np.ndarray:  # 4 address bytes as a LE u32, widened
        return _bswap(x & m32, np.uint32).astype(_U64)

    return [
        word32(first[:, 0] >> _U64(32)) << _U64(32),  # icmp key (0), src bytes 0..3
        mid(first),
        word32(first[:, 1]) | (word32(second[:, 0] >> _U64(32)) << _U64(32)),
        mid(second),
        word32(second[:, 1]),  # dst bytes 12..15, then the struct's tail padding
    ]


def _rol32(x: np.ndarray, b: int) -> np.ndarray:
    return (x << np.uint32(b)) | (x >> np.uint32(32 - b))


def _jhash_2words_zero(a: np.ndarray) -> np.ndarray:
    """jhash_2words(a, 0, 0) (the kernel's __jhash_final), vectorized on uint32."""
    init = np.uint32((0xDEADBEEF + 8) & 0xFFFFFFFF)
    a = a + init
    b = np.full_like(a, init)
    c = np.full_like(a, init)
    # One line per line of the kernel's __jhash_final, so the two read side by side.
    # fmt: off
    c ^= b; c -= _rol32(b, 14)  # noqa: E702 -- as __jhash_final writes it
    a ^= c; a -= _rol32(c, 11)  # noqa: E702 -- as __jhash_final writes it
    b ^= a; b -= _rol32(a, 25)  # noqa: E702 -- as __jhash_final writes it
    c ^= b; c -= _rol32(b, 16)  # noqa: E702 -- as __jhash_final writes it
    a ^= c; a -= _rol32(c, 4)  # noqa: E702 -- as __jhash_final writes it
    b ^= a; b -= _rol32(a, 14)  # noqa: E702 -- as __jhash_final writes it
    c ^= b; c -= _rol32(b, 24)  # noqa: E702 -- as __jhash_final writes it
    # fmt: on
    return c


# ---------------------------------------------------------------- scalar reference


def _jhash_2words_scalar(a: int, b: int, initval: int) -> int:
    m = 0xFFFFFFFF

    def rol(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & m

    a = (a + initval + 0xDEADBEEF + 8) & m
    b = (b + initval + 0xDEADBEEF + 8) & m
    c = (initval + 0xDEADBEEF + 8) & m
    c = ((c ^ b) - rol(b, 14)) & m
    a = ((a ^ c) - rol(c, 11)) & m
    b = ((b ^ a) - rol(a, 25)) & m
    c = ((c ^ b) - rol(b, 16)) & m
    a = ((a ^ c) - rol(c, 4)) & m
    b = ((b ^ a) - rol(a, 14)) & m
    c = ((c ^ b) - rol(b, 24)) & m
    return c


def flow_keys_bytes(
    src: str, dst: str, proto: int, sport: int, dport: int, s: LinuxHashSettings
) -> bytes:
    """The hashed bytes of the kernel's ``struct flow_keys`` for one flow, built as the
    kernel lays it out in memory (x86-64), after consistentify."""
    s_ip, d_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    mask = s.hashed_fields(s_ip.version)
    if s.forwarded and proto not in PORT_PROTOS:
        sport = dport = 0
    sp = struct.pack(">H", sport) if mask & FIELD_SRC_PORT else b"\0\0"
    dp = struct.pack(">H", dport) if mask & FIELD_DST_PORT else b"\0\0"
    if struct.unpack("<H", dp)[0] < struct.unpack("<H", sp)[0]:
        sp, dp = dp, sp
    size = 4 if s_ip.version == 4 else 16
    sa = s_ip.packed if mask & FIELD_SRC_IP else bytes(size)
    da = d_ip.packed if mask & FIELD_DST_IP else bytes(size)
    swap = struct.unpack("<I", da)[0] < struct.unpack("<I", sa)[0] if size == 4 else da < sa
    if swap:
        sa, da = da, sa
    basic = struct.pack("<HBB", 0, proto if mask & FIELD_IP_PROTO else 0, 0)
    tags = bytes(4)  # flow label (IPv6; not modelled: 0)
    head = (
        basic + tags + bytes(16) + bytes(4) + sp + dp + bytes(4)
    )  # vlan, cvlan, keyid, ports, icmp
    # IPv4: 4 more bytes of the zeroed address union; IPv6: the struct's tail padding.
    body = head + sa + da + bytes(4)
    assert len(body) == (48 if size == 4 else 72)
    return body


def flow_hash_scalar(
    src: str, dst: str, proto: int, sport: int, dport: int, s: LinuxHashSettings
) -> int:
    """Plain-Python reference for :func:`flow_hash` (one flow)."""
    key = s.key()
    family = ipaddress.ip_address(src).version
    if s.hashed_fields(family) == 0:
        mhash = 0
    else:
        keybytes = key.to_bytes(8, "little") * 2
        mhash = siphash24(keybytes, flow_keys_bytes(src, dst, proto, sport, dport, s)) & 0xFFFFFFFF
        mhash = mhash or 1
    if s.policy == 3 and s.forwarded:
        mhash = _jhash_2words_scalar(mhash, 0, 0)
    return mhash >> 1


def select_nexthop_scalar(
    flow: tuple[str, str, int, int, int], weights: Sequence[int], s: LinuxHashSettings
) -> int:
    """Plain-Python reference for :func:`select_nexthops` (one flow)."""
    bounds = [int(b) for b in upper_bounds(weights)]
    if len(bounds) == 1:
        return 0
    h = flow_hash_scalar(*flow, s)
    return next(i for i, bound in enumerate(bounds) if h <= bound)
