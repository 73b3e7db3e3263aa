"""The fewest prefix-list entries that accept exactly a set of host routes (pure).

An LB may announce exactly its VIPs (host routes, /32 or /128). Listing each one costs one
prefix-list line per VIP, and FRR 8.4 needs more than 20 s to load 3,000 of them. A range entry
`permit N/L ge H le H` (H the host length) accepts exactly the host routes inside N/L and
nothing else, not N/L itself and no other length. So the VIPs are collapsed into aligned
blocks that each lie wholly inside the set: every host route of a block is a VIP.

That cover is the smallest one made of permit entries: aligned blocks either nest or are
disjoint, so each block that fits wholly inside the set lies inside a maximal one, and the
maximal blocks are exactly what `ipaddress.collapse_addresses` returns.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PrefixRange:
    network: str  # "192.0.2.8/30"
    host_length: int  # 32 or 128: the only length the entry accepts

    @property
    def exact(self) -> bool:
        return self.network.endswith(f"/{self.host_length}")

    def entry(self) -> str:
        """The text after `permit` in a prefix-list line."""
        if self.exact:
            return self.network
        return f"{self.network} ge {self.host_length} le {self.host_length}"


def host_ranges(prefixes: Iterable[str]) -> list[PrefixRange]:
    """Host routes (one family or both) -> the fewest ranges accepting exactly them, sorted."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for prefix in prefixes:
        net = ipaddress.ip_network(prefix, strict=True)
        if net.prefixlen != net.max_prefixlen:
            raise ValueError(f"{prefix} is not a host route")
        if isinstance(net, ipaddress.IPv4Network):
            v4.append(net)
        else:
            v6.append(net)
    blocks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        *ipaddress.collapse_addresses(v4),
        *ipaddress.collapse_addresses(v6),
    ]
    return [PrefixRange(str(block), block.max_prefixlen) for block in blocks]
