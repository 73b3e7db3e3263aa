"""What each node needs from the kernel besides BGP: addresses, static routes, sysctls (pure).

The address plan fixes link and loopback addresses; this adds what the plan leaves to the lab:
- a client owns its whole source prefix ("AnyIP": the prefix is local on lo), so traffic can
  use any address of it, and its default route points at its router;
- a router reaches the prefixes of its own clients over their link (it originates them in BGP);
- an LB node has no route from BGP (routers send LBs nothing): it gets a static route to each
  client prefix, through every upstream router that reaches that client, and a host route to
  each backend's loopback over the direct link (backends listen on their loopback);
- a router gets the topology's multipath hashing sysctls, so every flow is predictable;
- an LB node skips a static next hop whose link lost its carrier (a dead router), as it
  would if it learned its return routes from a routing daemon (for IPv6 only new lookups
  do: sockets keep their cached route, so the lab runs a route keeper on LB nodes,
  lab/programs/route_keeper.py);
- the LB nodes reach each other (the second chance's VXLAN underlay, docs/second-chance.md):
  every LB node has a host route to every other one's underlay address (its address on its
  first router link) through that router, and every LB<->router link carries UNDERLAY_MTU
  bytes, so a forwarded 1500-byte packet plus VXLAN's 50 bytes is not fragmented.
Backends need no route: the LBs connect from their link address, which is directly connected.

`setup_commands` spells all of it as iproute2/sysctl commands (one argv string each, no shell),
which the containerlab rendering runs with `exec:`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.topology import Topology

# A full-size client packet (1500) inside VXLAN (+50) crosses an LB<->router link whole;
# measured: an overlay of 1450 instead makes every forwarded segment fragment, 3-5x slower.
UNDERLAY_MTU = 1550


@dataclass(frozen=True)
class NextHop:
    gateway: str
    device: str


@dataclass(frozen=True)
class Route:
    prefix: str  # "198.18.1.0/24", "default" is spelt 0.0.0.0/0 or ::/0
    nexthops: tuple[NextHop, ...]  # more than one: an ECMP route
    source: str | None = None  # preferred source address for connections that do not bind one

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.prefix).version


def addresses(plan: AddressPlan, node: str) -> list[tuple[str, str]]:
    """(device, address/len) of the node: loopback first, then its links in link order."""
    n = plan.nodes[node]
    out = [("lo", str(n.loopback_v4))]
    if n.loopback_v6 is not None:
        out.append(("lo", str(n.loopback_v6)))
    for iface in n.interfaces:
        out.append((iface.name, str(iface.ipv4)))
        if iface.ipv6 is not None:
            out.append((iface.name, str(iface.ipv6)))
    return out


def client_local_prefixes(topology: Topology, client: str) -> list[str]:
    """The client's source prefixes, each made local on lo as a whole."""
    return list(topology.client(client).prefixes)


def _gateway(plan: AddressPlan, node: str, peer: str, version: int) -> NextHop | None:
    """Next hop from `node` to its direct neighbour `peer`, or None if the link lacks the family."""
    theirs = plan.interface(peer, node)
    address = theirs.ipv4 if version == 4 else theirs.ipv6
    return None if address is None else NextHop(str(address.ip), plan.interface(node, peer).name)


def _reachable_clients(topology: Topology, router: str) -> set[str]:
    """Clients whose prefixes `router` learns: its own, and those of every router above it."""
    here = topology.tier_index(router)
    out: set[str] = set()
    for peer in topology.neighbors(router):
        if topology.kind(peer) == "client":
            out.add(peer)
        elif topology.kind(peer) == "router" and topology.tier_index(peer) == here - 1:
            out |= _reachable_clients(topology, peer)
    return out


def static_routes(
    topology: Topology, plan: AddressPlan | None = None
) -> dict[str, tuple[Route, ...]]:
    """Static routes of every node (empty for backends), in topology order."""
    plan = plan or topology.address_plan()
    out: dict[str, tuple[Route, ...]] = {}
    for node, kind in topology.kinds.items():
        routes: list[Route] = []
        if kind == "client":
            routes = _client_routes(topology, plan, node)
        elif kind == "router":
            for peer in topology.neighbors(node):
                if topology.kind(peer) == "client":
                    routes += _via(plan, node, [peer], topology.client(peer).prefixes)
        elif kind == "lb":
            routes = _lb_routes(topology, plan, node)
        out[node] = tuple(routes)
    return out


def _via(plan: AddressPlan, node: str, peers: list[str], prefixes: list[str]) -> list[Route]:
    routes = []
    for prefix in prefixes:
        version = ipaddress.ip_network(prefix).version
        hops = tuple(h for h in (_gateway(plan, node, p, version) for p in peers) if h is not None)
        if hops:
            routes.append(Route(prefix, hops))
    return routes


def _client_routes(topology: Topology, plan: AddressPlan, client: str) -> list[Route]:
    """Default routes via the client's router, sourced from its own prefix (not the link
    address, which nothing beyond the router knows how to reach)."""
    (router,) = topology.neighbors(client)  # a client has exactly one link (topology checks)
    routes = []
    for version, default in ((4, "0.0.0.0/0"), (6, "::/0")):
        prefix = topology.client(client).prefix(version)
        if prefix is None:
            continue
        for route in _via(plan, client, [router], [default]):
            routes.append(Route(route.prefix, route.nexthops, str(prefix.network_address + 1)))
    return routes


def _lb_routes(topology: Topology, plan: AddressPlan, lb: str) -> list[Route]:
    upstream = [p for p in topology.neighbors(lb) if topology.kind(p) == "router"]
    reach = {router: _reachable_clients(topology, router) for router in upstream}
    routes = []
    for client in topology.clients:
        routers = [r for r in upstream if client.name in reach[r]]
        routes += _via(plan, lb, routers, client.prefixes)
    for peer in topology.neighbors(lb):
        if topology.kind(peer) == "backend":
            routes += _via(plan, lb, [peer], [str(plan.nodes[peer].loopback_v4)])
    routes += _underlay_routes(topology, plan, lb)
    return routes


def underlay_router(topology: Topology, lb: str) -> str | None:
    """The router on the LB node's first router link: where its underlay address lives."""
    return next((p for p in topology.neighbors(lb) if topology.kind(p) == "router"), None)


def lb_underlay(topology: Topology, plan: AddressPlan, lb: str) -> str:
    """The LB node's underlay address: its IPv4 address on its first router link (its VXLAN
    packets come from it; the other LB nodes route to it through that router)."""
    router = underlay_router(topology, lb)
    if router is None:
        raise ValueError(f"LB node {lb} has no router link")
    return str(plan.interface(lb, router).ipv4.ip)


def _underlay_routes(topology: Topology, plan: AddressPlan, lb: str) -> list[Route]:
    """A /32 to each other LB node's underlay address, through the router that address is
    connected to (a router learns other routers' LB links from nobody). None where this node
    has no link to that router."""
    neighbours = set(topology.neighbors(lb))
    routes = []
    for peer in topology.lbs:
        router = underlay_router(topology, peer.name)
        if peer.name == lb or router is None or router not in neighbours:
            continue
        routes += _via(plan, lb, [router], [f"{lb_underlay(topology, plan, peer.name)}/32"])
    return routes


def link_mtu(topology: Topology, a: str, b: str) -> int | None:
    """The MTU of the link between nodes `a` and `b` (None: the kernel's default, 1500)."""
    kinds = {topology.kind(a), topology.kind(b)}
    return UNDERLAY_MTU if kinds == {"lb", "router"} else None


def link_mtus(topology: Topology, plan: AddressPlan, node: str) -> list[tuple[str, int]]:
    """(device, mtu) of the node's links that do not keep the default, in link order."""
    out = []
    for iface in plan.nodes[node].interfaces:
        mtu = link_mtu(topology, node, iface.peer)
        if mtu is not None:
            out.append((iface.name, mtu))
    return out


# A link going down flushes its IPv6 addresses by default (IPv4 ones stay): a router or LB
# node whose link came back up would have none, and its IPv6 sessions could never return.
KEEP_IPV6_ADDRESSES = {"net.ipv6.conf.all.keep_addr_on_down": 1}


def router_sysctls(topology: Topology, router: str) -> dict[str, int]:
    """Forwarding and the router's effective multipath hashing (see Topology.hashing_for)."""
    h = topology.hashing_for(router)
    out = {
        "net.ipv4.ip_forward": 1,
        "net.ipv4.fib_multipath_hash_policy": h.policy,
        "net.ipv4.fib_multipath_hash_fields": h.fields,
        "net.ipv4.fib_multipath_hash_seed": h.seed,
    }
    if topology.needs_ipv6:
        out |= {
            "net.ipv6.conf.all.forwarding": 1,
            "net.ipv6.fib_multipath_hash_policy": h.policy,
            "net.ipv6.fib_multipath_hash_fields": h.fields,
            **KEEP_IPV6_ADDRESSES,
        }
    return out


def lb_sysctls(topology: Topology) -> dict[str, int]:
    """An LB node's static routes to the clients spread over its routers; without this, the
    kernel keeps hashing return traffic onto a next hop whose link is down (RTNH_F_LINKDOWN)
    and every connection of that share stalls when a router dies."""
    out = {"net.ipv4.conf.all.ignore_routes_with_linkdown": 1}
    if topology.needs_ipv6:
        out["net.ipv6.conf.all.ignore_routes_with_linkdown"] = 1
        out |= KEEP_IPV6_ADDRESSES
    return out


def route_command(route: Route) -> str:
    family = "-6 " if route.version == 6 else ""
    if len(route.nexthops) == 1:
        hops = f"via {route.nexthops[0].gateway} dev {route.nexthops[0].device}"
    else:
        hops = " ".join(f"nexthop via {h.gateway} dev {h.device}" for h in route.nexthops)
    source = f" src {route.source}" if route.source else ""
    return f"ip {family}route replace {route.prefix}{source} {hops}"


def setup_commands(
    topology: Topology,
    node: str,
    plan: AddressPlan | None = None,
    routes: dict[str, tuple[Route, ...]] | None = None,
    *,
    sysctls: bool = True,
) -> list[str]:
    """iproute2 and sysctl commands that configure `node` (links already exist and are up).
    `sysctls=False` leaves the sysctls of routers and LB nodes out (containerlab sets them at
    creation)."""
    plan = plan or topology.address_plan()
    routes = routes if routes is not None else static_routes(topology, plan)
    cmds = []
    if sysctls and topology.kind(node) == "router":
        cmds += [
            f"sysctl -w {key}={value}" for key, value in router_sysctls(topology, node).items()
        ]
    if sysctls and topology.kind(node) == "lb":
        cmds += [f"sysctl -w {key}={value}" for key, value in lb_sysctls(topology).items()]
    for device, mtu in link_mtus(topology, plan, node):
        cmds.append(f"ip link set dev {device} mtu {mtu}")
    for device, cidr in addresses(plan, node):
        # nodad: a lab link address is unique by construction; DAD would delay it by seconds.
        cmds.append(
            f"ip -6 addr add {cidr} dev {device} nodad"
            if ":" in cidr
            else f"ip addr add {cidr} dev {device}"
        )
    if topology.kind(node) == "client":
        for prefix in client_local_prefixes(topology, node):
            family = "-6 " if ":" in prefix else ""
            cmds.append(f"ip {family}route replace local {prefix} dev lo")
    for route in routes[node]:
        cmds.append(route_command(route))
    return cmds
