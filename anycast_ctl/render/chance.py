"""Second chance on one LB node: the nftables ruleset and the overlay devices it needs (pure).

A TCP packet to one of the node's VIPs that is not a SYN and belongs to no connection the
node's conntrack knows is sent, unchanged, to the LB node that holds the connection, over a
VXLAN overlay between the LB nodes; that node serves it and replies to the client directly.
See docs/second-chance.md for why this mechanism and what it costs.

    plan = ChancePlan(node="lb2", index=1, underlay="10.0.0.6", peers=(...), vips=(...),
                      entries=(...), chain=("lb3",), hop_limit=1)
    ruleset(plan)           # text for `nft -f`, replacing the table atomically
    overlay_devices(plan)   # one VXLAN device per hop level

IPv4 VIPs get `table ip anycast_chance`, IPv6 VIPs `table ip6 anycast_chance` (the same rules
with `dup to ip6` targets); both ride the same VXLAN devices over the IPv4 underlay, each device
carrying an overlay address of each family the node serves.

Hops are counted by device: a packet arriving from a client is forwarded over level 1
(`acxch1`); one arriving on level k with no state here is forwarded over level k+1; one
arriving on the last level is never forwarded again. So no packet crosses more than
`hop_limit` LB nodes after the first, and none can loop.

Counters (named, read by chance/nft_counters.py): `forwarded_<peer>` for what each live peer
was sent, at any level, and `arrived` for what came in over the overlay. Per-flow entries are
a verdict map into one chain per peer (`to_<peer>`), so each packet is counted by its target.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from anycast_ctl.sim.chain import HOP_LIMIT_MAX, ForwardEntry, fallback_chain

if TYPE_CHECKING:  # the agent renders its ruleset without loading the topology's models
    from anycast_ctl.config.topology import Topology

TABLE = "anycast_chance"
VNI_BASE = 0xAC5C00  # level k uses VNI VNI_BASE + k
VXLAN_PORT = 4789
OVERLAY_FIRST_OCTET = 100
OVERLAY6_PREFIX = "fd00:ac5c"  # level k's IPv6 overlay: fd00:ac5c:k::/64
FAMILY = {4: "ip", 6: "ip6"}
MAX_NODES = 254
ARRIVED = "arrived"  # named counter: packets that came in over the overlay, from a peer
FORWARDED_PREFIX = "forwarded_"  # + peer name: named counter of the packets sent to that peer


@dataclass(frozen=True)
class Peer:
    name: str
    index: int  # position of the node in the topology's LB list (its overlay host number - 1)
    underlay: str  # the address the node's VXLAN packets come from and go to


@dataclass(frozen=True)
class ChancePlan:
    node: str
    index: int
    underlay: str
    peers: tuple[Peer, ...]  # live LB nodes only: a node that is down is never a target
    vips: tuple[tuple[str, int], ...]  # (VIP, TCP port) served by this node, either family
    entries: tuple[ForwardEntry, ...]  # flows this node receives but another node owns
    chain: tuple[str, ...]  # fallback for flows without an entry: its first peer is asked
    hop_limit: int = 1
    # The overlay's MTU. None: the kernel's default, the underlay's 1500 less VXLAN's 50 bytes,
    # so a forwarded full-size segment costs its client an ICMP "fragmentation needed" and a
    # retransmission. 1500 needs an underlay carrying 1550-byte frames between the LB nodes.
    mtu: int | None = None

    def __post_init__(self) -> None:
        if self.mtu is not None and not 1280 <= self.mtu <= 9000:
            raise ValueError(f"overlay mtu {self.mtu} is outside 1280..9000")
        if not 1 <= self.hop_limit <= HOP_LIMIT_MAX:
            raise ValueError(f"hop_limit must be within 1..{HOP_LIMIT_MAX}, not {self.hop_limit}")
        names = {p.name for p in self.peers}
        if self.node in names:
            raise ValueError(f"{self.node} cannot be its own peer")
        for node_index in (self.index, *(p.index for p in self.peers)):
            if not 0 <= node_index < MAX_NODES:
                raise ValueError(f"node index {node_index} is outside 0..{MAX_NODES - 1}")
        for address in (self.underlay, *(p.underlay for p in self.peers)):
            _ipv4(address, "underlay address")
        vip_versions(self.vips)  # each VIP checked
        for entry in self.entries:
            if entry.owner not in names:
                raise ValueError(
                    f"flow {entry.flow} is owned by {entry.owner}, which is not a live peer"
                )
            source = _version(entry.flow[0], "flow source")
            if _version(entry.flow[2], "flow destination") != source:
                raise ValueError(f"flow {entry.flow} mixes IPv4 and IPv6")
        for name in self.chain:
            if name not in names:
                raise ValueError(f"fallback node {name} is not a live peer")

    def families(self) -> tuple[int, ...]:
        """The IP versions this node serves VIPs of (each gets its table), 4 first."""
        return tuple(sorted(set(vip_versions(self.vips))))


@lru_cache(maxsize=16)
def vip_versions(vips: tuple[tuple[str, int], ...]) -> tuple[int, ...]:
    """Each (VIP, port)'s IP version, checked: ValueError names a bad address or port.

    Cached: a node's plans all carry its same VIPs, and a peer's change of state must reach
    the table quickly; parsing 1,000 addresses again took 15-30 ms of the agent's event loop
    a plan (py-spy, 2026-12-02), while the node's ExaBGP waited on it for its next lines."""
    for _, port in vips:
        if not 1 <= port <= 65535:
            raise ValueError(f"VIP port {port} is outside 1..65535")
    return tuple(_version(vip, "VIP") for vip, _ in vips)


def _ipv4(text: str, what: str) -> None:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an IPv4 address") from None


def _version(text: str, what: str) -> int:
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an IP address") from None


def device(level: int) -> str:
    return f"acxch{level}"


def forwarded_counter(peer: str) -> str:
    """The named counter of the packets this node sent to `peer`, at any level (node names
    are letters, digits, '_' and '-': nft identifiers as they are)."""
    return f"{FORWARDED_PREFIX}{peer}"


def peer_chain(peer: str) -> str:
    return f"to_{peer}"


def overlay_address(level: int, index: int, version: int = 4) -> str:
    """Node `index`'s address on level `level`'s overlay: 169.254.(100+level).(index+1), and
    for IPv6 the unique-local fd00:ac5c:LEVEL::(index+1) (hex)."""
    if version == 6:
        return f"{OVERLAY6_PREFIX}:{level:x}::{index + 1:x}"
    return f"169.254.{OVERLAY_FIRST_OCTET + level}.{index + 1}"


@dataclass(frozen=True)
class OverlayDevice:
    name: str
    vni: int
    local: str  # underlay address of this node
    address: str  # this node's overlay address, with its /24
    remotes: tuple[str, ...]  # underlay addresses flooded to (ARP, ND): the live peers only
    mtu: int | None = None
    address6: str | None = None  # its IPv6 overlay address with its /64 (IPv6 VIPs only)


def overlay_devices(plan: ChancePlan) -> list[OverlayDevice]:
    remotes = tuple(p.underlay for p in plan.peers)
    return [
        OverlayDevice(
            device(level),
            VNI_BASE + level,
            plan.underlay,
            f"{overlay_address(level, plan.index)}/24",
            remotes,
            plan.mtu,
            f"{overlay_address(level, plan.index, 6)}/64" if 6 in plan.families() else None,
        )
        for level in range(1, plan.hop_limit + 1)
    ]


def ruleset(plan: ChancePlan) -> str:
    """Both tables, each preceded by its deletion: `nft -f` applies it in one transaction.

    The IPv4 table is always there (it guards the VXLAN port); the IPv6 one only when the node
    serves an IPv6 VIP, else it goes (a node that lost its last IPv6 VIP keeps no stale one).
    """
    lines = [line for family in FAMILY.values() for line in _deletion(family)]
    lines += _table(plan, 4)
    if 6 in plan.families():
        lines += _table(plan, 6)
    return "\n".join([*lines, ""])


def _deletion(family: str) -> list[str]:
    return [f"table {family} {TABLE} {{}}", f"delete table {family} {TABLE}"]


def _table(plan: ChancePlan, version: int) -> list[str]:
    family, addr = FAMILY[version], "ipv4_addr" if version == 4 else "ipv6_addr"
    by_name = {p.name: p for p in plan.peers}
    devices = ", ".join(f'"{device(k)}"' for k in range(1, plan.hop_limit + 1))
    last = device(plan.hop_limit)
    vips = [vip for vip, v in zip(plan.vips, vip_versions(plan.vips), strict=True) if v == version]
    entries = [e for e in plan.entries if ipaddress.ip_address(e.flow[2]).version == version]
    lines = [f"table {family} {TABLE} {{"]
    if version == 4:
        lines += [
            "\tset peers {",
            "\t\ttype ipv4_addr",
            *_elements(sorted({p.underlay for p in plan.peers}, key=ipaddress.IPv4Address)),
            "\t}",
        ]
    lines += [
        "\tset vips {",
        f"\t\ttype {addr} . inet_service",
        *_elements([f"{vip} . {port}" for vip, port in vips]),
        "\t}",
        "\tmap owners {",
        f"\t\ttype {addr} . inet_service . {addr} . inet_service : verdict",
        *_elements(
            [
                f"{s} . {sp} . {d} . {dp} : goto {peer_chain(e.owner)}"
                for e in entries
                for s, sp, d, dp in [e.flow]
            ]
        ),
        "\t}",
        *(
            f'\tcounter {forwarded_counter(p.name)} {{ comment "sent to {p.name}" }}'
            for p in plan.peers
        ),
        f'\tcounter {ARRIVED} {{ comment "received from another LB node" }}',
        *(line for p in plan.peers for line in _peer_chain(p, version)),
        "\tchain prerouting {",
        "\t\ttype filter hook prerouting priority mangle; policy accept;",
    ]
    if version == 4:
        lines += [
            "\t\t# VXLAN from anything but a live LB node never enters the overlay.",
            f"\t\tudp dport {VXLAN_PORT} ip saddr != @peers drop",
        ]
    lines += [
        "\t\tmeta l4proto != tcp accept",
        f"\t\t{family} daddr . tcp dport != @vips accept",
        f"\t\tiifname {{ {devices} }} counter name {ARRIVED}",
        "\t\t# SYNs are always served here; so is every connection this node holds.",
        "\t\ttcp flags & syn == syn accept",
        "\t\tct state established,related accept",
        f'\t\tiifname "{last}" accept',
    ]
    successor = by_name[plan.chain[0]] if plan.chain else None
    for level in range(1, plan.hop_limit):
        if successor is not None:
            lines.append(
                f'\t\tiifname "{device(level)}" '
                f"dup to {overlay_address(level + 1, successor.index, version)} "
                f'device "{device(level + 1)}" '
                f"counter name {forwarded_counter(successor.name)} drop"
            )
    lines.append(f"\t\tiifname {{ {devices} }} accept")
    if entries:
        lines.append(f"\t\t{family} saddr . tcp sport . {family} daddr . tcp dport vmap @owners")
    if successor is not None:
        lines.append(f"\t\tgoto {peer_chain(successor.name)}")
    return [*lines, "\t}", "}"]


def _peer_chain(peer: Peer, version: int) -> list[str]:
    """A packet sent to `peer` over the first level, counted by its counter: the owners map
    and the fallback jump here, so each peer's traffic is counted once, in the kernel."""
    return [
        f"\tchain {peer_chain(peer.name)} {{",
        f"\t\tdup to {overlay_address(1, peer.index, version)} "
        f'device "{device(1)}" counter name {forwarded_counter(peer.name)} drop',
        "\t}",
    ]


def plan_for(
    topo: Topology,
    node: str,
    *,
    alive: frozenset[str],
    entries: tuple[ForwardEntry, ...] = (),
    likely: tuple[str, ...] = (),
    hop_limit: int = 1,
    mtu: int | None = None,
) -> ChancePlan:
    """The plan of one LB node of a topology: its VIPs (IPv4 and IPv6), its live peers, the
    entries whose owner is alive (a flow owned by a node that is down is lost whatever we do),
    and the fallback chain (`likely` previous owners first). Underlay: each node's address on
    its first link to a router."""
    from anycast_ctl.render.hostnet import lb_underlay

    lbs = tuple(lb.name for lb in topo.lbs)
    if node not in lbs:
        raise ValueError(f"{node!r} is not one of the LB nodes ({', '.join(lbs)})")
    addresses = topo.address_plan()

    def underlay(name: str) -> str:
        return lb_underlay(topo, addresses, name)

    live = alive - {node}
    peers = tuple(Peer(lb, i, underlay(lb)) for i, lb in enumerate(lbs) if lb in live)
    mine = topo.lb(node).vips
    vips = tuple((str(v.ip), v.port) for v in topo.vips if v.name in mine)
    return ChancePlan(
        node,
        lbs.index(node),
        underlay(node),
        peers,
        vips,
        tuple(e for e in entries if e.owner in live),
        fallback_chain(node, lbs, frozenset(live), hop_limit, likely),
        hop_limit,
        mtu,
    )


def _elements(items: list[str]) -> list[str]:
    if not items:
        return []
    body = [f"\t\t\t{item}," for item in items]
    body[-1] = body[-1][:-1]
    return ["\t\telements = {", *body, "\t\t}"]


def removal() -> str:
    """`nft -f` text that removes both tables whether or not they exist."""
    return "\n".join([*(line for f in FAMILY.values() for line in _deletion(f)), ""])
