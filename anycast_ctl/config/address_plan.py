"""The deterministic address plan of a topology: interfaces, link addresses, loopbacks, sessions.

Everything is derived from the order of `links` and of the node lists, so the same file gives
the same plan on every run and every machine:

- link i gets the i-th /31 of the IPv4 pool (side `a` the even address, `b` the odd one) and,
  when any VIP is IPv6, the i-th /127 of the IPv6 pool's first /64;
- node k (routers, then LBs, backends, clients, in file order) gets loopback k+1 of the last /24
  of the IPv4 pool (its router ID) and, with IPv6, of the last /64 of the IPv6 pool;
- the interface facing peer P is named "eth-P" (node names are at most 11 characters).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from anycast_ctl.config.topology_model import NodeKind, TopologyModel
from anycast_ctl.errors import Problem, UserError

IPv4If = ipaddress.IPv4Interface
IPv6If = ipaddress.IPv6Interface


@dataclass(frozen=True)
class Interface:
    node: str
    name: str  # "eth-<peer>", at most 15 characters
    peer: str
    ipv4: IPv4If  # e.g. 100.64.0.0/31
    ipv6: IPv6If | None  # e.g. fd00:64::/127, only when a VIP is IPv6
    link: int  # index in Topology.links


@dataclass(frozen=True)
class Node:
    name: str
    kind: NodeKind
    loopback_v4: IPv4If  # /32, also the router ID
    loopback_v6: IPv6If | None  # /128 when IPv6 is in use
    interfaces: tuple[Interface, ...]  # in link order

    @property
    def router_id(self) -> str:
        return str(self.loopback_v4.ip)


@dataclass(frozen=True)
class Speaker:
    """One end of a BGP session."""

    node: str
    kind: NodeKind
    asn: int
    interface: Interface


@dataclass(frozen=True)
class BgpSession:
    """A BGP session over one link: router-router, or router-LB (`lb` set)."""

    link: int
    upstream: Speaker  # the side nearer the clients (always a router)
    downstream: Speaker  # the side nearer the LBs (router of the next tier, or the LB node)
    md5_password: str | None
    hold_time: int
    # For router-LB sessions: what the router accepts from the LB and how many prefixes at most.
    lb_prefixes: tuple[str, ...] | None
    maximum_prefix: int | None

    @property
    def lb(self) -> str | None:
        return self.downstream.node if self.downstream.kind == "lb" else None


@dataclass(frozen=True)
class AddressPlan:
    nodes: dict[str, Node]  # in topology order: routers, LBs, backends, clients
    sessions: tuple[BgpSession, ...]  # in link order

    def interface(self, node: str, peer: str) -> Interface:
        return next(i for i in self.nodes[node].interfaces if i.peer == peer)

    def sessions_of(self, node: str) -> list[BgpSession]:
        return [s for s in self.sessions if node in (s.upstream.node, s.downstream.node)]


def plan_addresses(topo: TopologyModel) -> AddressPlan:
    v4 = ipaddress.IPv4Network(topo.addressing.ipv4)
    v6 = ipaddress.IPv6Network(topo.addressing.ipv6) if topo.needs_ipv6 else None
    names = [
        n.name for group in (topo.routers, topo.lbs, topo.backends, topo.clients) for n in group
    ]
    problems = capacity_problems(topo)
    if problems:
        raise UserError([Problem(topo.source, where, what) for where, what in problems])

    loop4 = list(v4.subnets(new_prefix=24))[-1]
    loop6 = _last_64(v6) if v6 else None
    link6 = next(v6.subnets(new_prefix=64)) if v6 else None
    ifaces: dict[str, list[Interface]] = {n: [] for n in names}
    for i, link in enumerate(topo.links):
        for side, (node, peer) in enumerate(((link.a, link.b), (link.b, link.a))):
            ip4 = IPv4If(f"{v4.network_address + 2 * i + side}/31")
            ip6 = IPv6If(f"{link6.network_address + 2 * i + side}/127") if link6 else None
            ifaces[node].append(Interface(node, f"eth-{peer}", peer, ip4, ip6, i))

    nodes = {}
    for k, name in enumerate(names):
        lo6 = IPv6If(f"{loop6.network_address + k + 1}/128") if loop6 else None
        nodes[name] = Node(
            name,
            topo.kind(name),
            IPv4If(f"{loop4.network_address + k + 1}/32"),
            lo6,
            tuple(ifaces[name]),
        )
    return AddressPlan(nodes, tuple(_sessions(topo, nodes)))


def _sessions(topo: TopologyModel, nodes: dict[str, Node]) -> list[BgpSession]:
    sessions = []
    for i, link in enumerate(topo.links):
        kinds = {topo.kind(link.a), topo.kind(link.b)}
        if not kinds <= {"router", "lb"}:
            continue  # client and backend links carry no BGP
        up, down = sorted((link.a, link.b), key=topo.tier_index)
        is_lb = topo.kind(down) == "lb"
        sessions.append(
            BgpSession(
                link=i,
                upstream=_speaker(topo, nodes, up, down, i),
                downstream=_speaker(topo, nodes, down, up, i),
                md5_password=topo.md5_for(link),
                hold_time=topo.bgp.hold_time,
                lb_prefixes=tuple(topo.vip(v).address for v in topo.lb(down).vips)
                if is_lb
                else None,
                maximum_prefix=topo.maximum_prefix_for(down) if is_lb else None,
            )
        )
    return sessions


def _speaker(
    topo: TopologyModel, nodes: dict[str, Node], node: str, peer: str, link: int
) -> Speaker:
    kind = topo.kind(node)
    asn = topo.router(node).asn if kind == "router" else topo.lb(node).asn
    iface = next(i for i in nodes[node].interfaces if i.link == link)
    return Speaker(node, kind, asn, iface)


def _last_64(net: ipaddress.IPv6Network) -> ipaddress.IPv6Network:
    # The last /64 of the pool without listing 2**(64-prefixlen) subnets.
    last = int(net.broadcast_address) & ~((1 << 64) - 1)
    return ipaddress.IPv6Network((last, 64))


def capacity_problems(topo: TopologyModel) -> list[tuple[str, str]]:
    """Whether the pools hold every link and loopback. Only what needs addresses (rendering,
    the lab) asks: the simulator routes by name and has no such limit."""
    v4 = ipaddress.IPv4Network(topo.addressing.ipv4)
    nodes = len(topo.kinds)
    link_room = (v4.num_addresses - 256) // 2  # the last /24 is kept for loopbacks
    problems = []
    if len(topo.links) > link_room:
        problems.append(
            ("addressing.ipv4", f"{v4} holds {link_room} links, the topology has {len(topo.links)}")
        )
    if nodes > 254:
        problems.append(
            (
                "",
                f"{nodes} nodes (routers, LBs, backends, clients): the address plan gives each a "
                "loopback from the last /24 of addressing.ipv4, which holds 254, whatever the "
                "pool's size; the simulator has no such limit",
            )
        )
    return problems
