"""Flows for the simulator: generated from the topology's clients and VIPs, or read from CSV.

A `FlowBatch` is one address family's flows (helper `FlowArrays`) plus, per flow, the client
it comes from (which fixes its first router), the VIP it goes to, and its byte count.
Generation runs in fixed blocks seeded by (seed, block number), so a run streams any number of
flows in bounded memory and gives the same flows whatever chunk size the caller uses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from anycast_ctl.config.topology import Topology
from anycast_ctl.sim.flowarrays import FlowArrays

BLOCK = 1 << 18  # flows per generated block: the unit of determinism and of streaming
BYTES_PER_PACKET = 1000
MAX_PACKETS = 1_000_000  # cap of the Zipf tail, so one flow cannot hold all the bytes
_MASK64 = (1 << 64) - 1


class FlowMismatch(ValueError):
    """A given flow does not fit the topology: `index` (0-based) and the field at fault."""

    def __init__(self, index: int, field: str, message: str):
        super().__init__(f"flow {index}, field {field}: {message}")
        self.index, self.field, self.message = index, field, message


@dataclass(frozen=True)
class FlowBatch:
    flows: FlowArrays
    client: np.ndarray  # int64 index into topology.clients
    vip: np.ndarray  # int64 index into topology.vips
    bytes: np.ndarray  # float64 bytes carried by each flow

    def __len__(self) -> int:
        return len(self.flows)


def routes(topo: Topology) -> list[tuple[int, int]]:
    """(client, vip) pairs that carry traffic: the client has a prefix of the VIP's family."""
    return [
        (c, v)
        for c, client in enumerate(topo.clients)
        for v, vip in enumerate(topo.vips)
        if client.prefix(vip.version) is not None
    ]


def generate(topo: Topology, count: int, seed: int = 1, zipf: float = 1.5) -> Iterator[FlowBatch]:
    """`count` flows: clients by weight, VIPs uniform per client, random sources and ports.

    Sources are uniform in the client's prefix, source ports uniform in 1024-65535, TCP to
    the VIP's port. Bytes follow a Zipf law (a few elephants carry most bytes) with exponent
    `zipf` > 1; `zipf=0` gives every flow the same weight.
    """
    if zipf != 0 and zipf <= 1:
        raise ValueError("the Zipf exponent must be greater than 1 (or 0 for equal flows)")
    pairs = routes(topo)
    weights = np.array(
        [topo.clients[c].weight / sum(1 for c2, _ in pairs if c2 == c) for c, _ in pairs]
    )
    probability = weights / weights.sum()
    for block, start in enumerate(range(0, count, BLOCK)):
        rng = np.random.default_rng([seed, block])
        n = min(BLOCK, count - start)
        pick = rng.choice(len(pairs), size=n, p=probability)
        sizes = rng.zipf(zipf, size=n).clip(max=MAX_PACKETS) if zipf else np.ones(n)
        sport = rng.integers(1024, 65536, size=n)
        for family in (4, 6):
            members = [i for i, (_, v) in enumerate(pairs) if topo.vips[v].version == family]
            if not members:
                continue
            rows = np.flatnonzero(np.isin(pick, members))
            if len(rows):
                yield _batch(topo, pairs, pick[rows], sport[rows], sizes[rows], family, rng)


def _batch(
    topo: Topology,
    pairs: list[tuple[int, int]],
    pick: np.ndarray,
    sport: np.ndarray,
    sizes: np.ndarray,
    family: int,
    rng: np.random.Generator,
) -> FlowBatch:
    n = len(pick)
    client = np.array([c for c, _ in pairs], dtype=np.int64)[pick]
    vip = np.array([v for _, v in pairs], dtype=np.int64)[pick]
    src = _random_sources(topo, client, family, rng)
    dst_of_vip = [int(v.ip) if v.version == family else 0 for v in topo.vips]
    port_of_vip = np.array([v.port for v in topo.vips], dtype=np.int64)
    if family == 4:
        dst = np.array(dst_of_vip, dtype=np.uint32)[vip]
    else:
        dst = np.array([[a >> 64, a & _MASK64] for a in dst_of_vip], dtype=np.uint64)[vip]
    flows = FlowArrays(src, dst, np.full(n, 6), sport, port_of_vip[vip], family)
    return FlowBatch(flows, client, vip, sizes.astype(np.float64) * BYTES_PER_PACKET)


def _random_sources(
    topo: Topology, client: np.ndarray, family: int, rng: np.random.Generator
) -> np.ndarray:
    n = len(client)
    if family == 4:
        src = np.zeros(n, dtype=np.uint32)
        for c, cl in enumerate(topo.clients):
            rows = client == c
            net = cl.prefix(4)
            if net is not None and rows.any():
                src[rows] = int(net.network_address) + rng.integers(
                    0, net.num_addresses, size=int(rows.sum())
                )
        return src
    src = np.zeros((n, 2), dtype=np.uint64)
    for c, cl in enumerate(topo.clients):
        rows = np.flatnonzero(client == c)
        net = cl.prefix(6)
        if net is None or not len(rows):
            continue
        host = (1 << (128 - net.prefixlen)) - 1
        base = int(net.network_address)
        rand = rng.integers(0, 1 << 64, size=(len(rows), 2), dtype=np.uint64)
        src[rows, 0] = np.uint64(base >> 64) | (rand[:, 0] & np.uint64((host >> 64) & _MASK64))
        src[rows, 1] = np.uint64(base & _MASK64) | (rand[:, 1] & np.uint64(host & _MASK64))
    return src


def attach(topo: Topology, flows: FlowArrays, byte_counts: np.ndarray | None = None) -> FlowBatch:
    """Give given flows (e.g. read from CSV) their client and VIP: by source prefix and VIP address.

    Raises FlowMismatch for the first flow whose destination is no VIP or whose source is in
    no client's prefix.
    """
    n = len(flows)
    dsts = flows.address_strings("dst")
    srcs = flows.address_strings("src")
    by_address = {str(v.ip): i for i, v in enumerate(topo.vips)}
    prefixes = [
        (c, ipaddress.ip_network(p)) for c, cl in enumerate(topo.clients) for p in cl.prefixes
    ]
    vip = np.empty(n, dtype=np.int64)
    client = np.empty(n, dtype=np.int64)
    for i in range(n):
        if dsts[i] not in by_address:
            raise FlowMismatch(
                i, "dst", f"{dsts[i]} is not a VIP of the topology ({', '.join(by_address)})"
            )
        vip[i] = by_address[dsts[i]]
        addr = ipaddress.ip_address(srcs[i])
        owner = next((c for c, net in prefixes if addr in net), None)
        if owner is None:
            raise FlowMismatch(i, "src", f"{srcs[i]} is in no client's prefix")
        client[i] = owner
    counts = np.ones(n) if byte_counts is None else np.asarray(byte_counts, dtype=np.float64)
    return FlowBatch(flows, client, vip, counts)
