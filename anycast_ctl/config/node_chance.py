"""The `second_chance` section of a node config: forwarding moved connections to their owner.

Rendered by `render node` from the topology (on by default), absent (off) in a config written
by hand unless it says `enabled: true`. What it drives is in docs/second-chance.md; the
agent's side is `anycast_ctl/chance/`.

    second_chance:
      enabled: true
      index: 1                      # this node's place among the topology's LB nodes
      underlay: 100.64.0.5          # where its overlay packets and heartbeats come from
      vips: [{address: 192.0.2.10, port: 443}, {address: "2001:db8:f::10", port: 443}]
      peers: [{name: lb1, index: 0, underlay: 100.64.0.1, overlay: 169.254.101.1,
               overlay6: "fd00:ac5c:1::1"}, ...]   # overlay6: with an IPv6 VIP only

An IPv6 VIP gets its own nft table (`table ip6 anycast_chance`) over the same VXLAN devices:
the underlay stays IPv4, each device gains an IPv6 overlay address (render/chance.py).
      heartbeat: {port: 4795, interval: 0.15, dead_after: 0.6, key: "..."}
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from anycast_ctl.config.common import Name, Port, SafeStr, StrictModel

MAX_NODE_INDEX = 253  # overlay host numbers 1..254 of a /24
OVERLAY_NETWORK = "169.254.101.0/24"  # level 1 of render/chance.py's overlay
OVERLAY6_NETWORK = "fd00:ac5c:1::/64"  # level 1 of its IPv6 overlay
HOP_LIMIT_MAX = 3  # render/chance.py and sim/chain.py enforce the same bound
DEFAULT_HEARTBEAT_PORT = 4795


def _ipv4(value: object) -> str:
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise ValueError(f"{address} cannot be an LB node's underlay address")
    return str(address)


def _vip(value: object) -> str:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
    if (
        address.is_unspecified
        or address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or getattr(address, "ipv4_mapped", None) is not None
    ):
        raise ValueError(f"{address} cannot be a VIP (a unicast address clients reach)")
    return str(address)


def _ipv6(value: object) -> str:
    try:
        return str(ipaddress.IPv6Address(str(value)))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv6 address") from None


IPv4 = Annotated[str, BeforeValidator(_ipv4)]
IPv6 = Annotated[str, BeforeValidator(_ipv6)]
VipAddress = Annotated[str, BeforeValidator(_vip)]
NodeIndex = Annotated[int, Field(ge=0, le=MAX_NODE_INDEX)]


def overlay_of(index: int) -> str:
    """A node's first-level overlay address (render/chance.overlay_address(1, index))."""
    return str(ipaddress.IPv4Network(OVERLAY_NETWORK)[index + 1])


def overlay6_of(index: int) -> str:
    """Its first-level IPv6 overlay address (render/chance.overlay_address(1, index, 6))."""
    return str(ipaddress.IPv6Network(OVERLAY6_NETWORK)[index + 1])


def heartbeat_key(value: str) -> str:
    if not 16 <= len(value.encode()) <= 256:
        raise ValueError("a heartbeat key is 16-256 bytes (the same on every LB node)")
    return value


def _absolute(value: object) -> Path:
    path = Path(str(value))
    if not path.is_absolute():
        raise ValueError(f"{value!r} must be an absolute path")
    return path


class ChancePeer(StrictModel):
    name: Name
    index: NodeIndex
    underlay: IPv4
    # Written by `render node` for the reader (overlay6 with an IPv6 VIP); must match index.
    overlay: IPv4 | None = None
    overlay6: IPv6 | None = None

    @model_validator(mode="after")
    def _overlay_matches(self) -> ChancePeer:
        for given, wanted, field_name in (
            (self.overlay, overlay_of(self.index), "overlay"),
            (self.overlay6, overlay6_of(self.index), "overlay6"),
        ):
            if given is not None and given != wanted:
                raise ValueError(
                    f"{field_name} {given} is not node index {self.index}'s ({wanted})"
                )
        return self


class ChanceVip(StrictModel):
    address: VipAddress  # IPv4 or IPv6: each family gets its table
    port: Port = 443


class Heartbeat(StrictModel):
    """UDP datagrams between the agents over the underlay: who is live, drained or down."""

    port: Port = DEFAULT_HEARTBEAT_PORT
    interval: Annotated[float, Field(ge=0.02, le=5)] = 0.15
    # A peer heard from less recently than this is down: never a forwarding target.
    dead_after: Annotated[float, Field(ge=0.1, le=60)] = 0.6
    # HMAC-SHA256 key shared by every LB node; without one, only the source address (a live
    # peer's underlay address) authenticates a heartbeat, as for the overlay's packets.
    key: Annotated[SafeStr, AfterValidator(heartbeat_key)] | None = None
    # A heartbeat stamped further than this from our clock is refused (replays; NTP assumed).
    max_skew: Annotated[float, Field(ge=0.5, le=300)] = 5.0

    @model_validator(mode="after")
    def _several_beats(self) -> Heartbeat:
        if self.dead_after < 3 * self.interval:
            raise ValueError(
                f"dead_after ({self.dead_after:g}s) must be at least 3 intervals "
                f"({3 * self.interval:g}s): one lost datagram must not make a peer down"
            )
        return self


class SecondChance(StrictModel):
    enabled: bool = False
    index: NodeIndex | None = None
    underlay: IPv4 | None = None
    vips: list[ChanceVip] = []  # the TCP services whose moved connections are forwarded
    peers: list[ChancePeer] = []  # every other LB node of the topology
    hop_limit: Annotated[int, Field(ge=1, le=HOP_LIMIT_MAX)] = 1
    # The overlay's MTU: 1500 needs an underlay carrying 1550-byte frames between the LB
    # nodes; None keeps the kernel's 1450 (every full-size forwarded segment fragments).
    overlay_mtu: Annotated[int, Field(ge=1280, le=9000)] | None = 1500
    # The topology file: with it the agent predicts the routers' hashing (likely previous
    # owners first); without it, or where `unpredictable` says why not, the ring alone.
    topology: Annotated[Path, BeforeValidator(_absolute)] | None = None
    unpredictable: list[SafeStr] = []  # reasons `render node` found; the agent logs them
    # A drained node keeps forwarding state (serving its connections) this long at most.
    drain_timeout: Annotated[float, Field(ge=1, le=7 * 86400)] = 3600
    heartbeat: Heartbeat = Heartbeat()

    @model_validator(mode="after")
    def _complete(self) -> SecondChance:
        if not self.enabled:
            return self
        if self.index is None or self.underlay is None:
            raise ValueError("enabled needs index and underlay (this node's place and address)")
        seen_vips: dict[tuple[str, int], int] = {}
        for i, vip in enumerate(self.vips):
            first = seen_vips.setdefault((vip.address, vip.port), i)
            if first != i:
                raise ValueError(
                    f"vips[{i}] ({vip.address} port {vip.port}) is vips[{first}] again"
                )
        seen_names: set[str] = set()
        seen_index = {self.index: "this node"}
        seen_underlay = {self.underlay: "this node"}
        for peer in self.peers:
            if peer.name in seen_names:
                raise ValueError(f"peer {peer.name} is listed twice")
            seen_names.add(peer.name)
            if peer.index in seen_index:
                raise ValueError(
                    f"peer {peer.name}: index {peer.index} is already {seen_index[peer.index]}'s"
                )
            seen_index[peer.index] = peer.name
            if peer.underlay in seen_underlay:
                raise ValueError(
                    f"peer {peer.name}: underlay {peer.underlay} is already "
                    f"{seen_underlay[peer.underlay]}'s"
                )
            seen_underlay[peer.underlay] = peer.name
        return self
