"""Topology -> one RouterPlan per router (pure): who each router peers with and what it accepts.

Per BGP session of the address plan:
  - router-LB: an IPv4 session accepting exactly the LB's IPv4 VIPs and, when the topology has
    IPv6 VIPs, an IPv6 session (link /127) accepting exactly its IPv6 VIPs; maximum-prefix
    from the topology; nothing is sent to the LB.
  - router-router: IPv4 (and IPv6) sessions accepting and sending everything, so VIPs flow
    toward the clients and client prefixes toward the LBs.
Every session carries the topology's TCP-MD5 password; the lab requires one. Keepalive is a
third of the hold time, as BGP suggests. A router originates the prefixes of its clients.
With the topology's `bfd:` on (the default), every router-LB session is tied to BFD with its
timers (render/bfdd.py renders the LB's end).
"""

from __future__ import annotations

import ipaddress

from pydantic import ValidationError

from anycast_ctl.config.address_plan import BgpSession, Speaker
from anycast_ctl.config.topology import Topology
from anycast_ctl.errors import Problem, UserError
from anycast_ctl.render.frr import ANY, BfdProfile, Neighbor, RouterPlan
from anycast_ctl.render.lb_layout import LB_SESSION_HOPS

ROUTER_PEER_MAX_PREFIX = 1000  # router-router sessions: a guard against a leak, not a policy
IPV6_SESSION_SUFFIX = "-v6"  # a node's IPv6 session is named after it with this suffix


def neighbor_name(node: str, family: int) -> str:
    """The FRR neighbor name of the session with `node` in this address family."""
    return node if family == 4 else f"{node}{IPV6_SESSION_SUFFIX}"


def neighbor_node(name: str) -> str:
    """The node a neighbor name (neighbor_name) stands for, whatever its family."""
    return name.removesuffix(IPV6_SESSION_SUFFIX)


def router_plans(topo: Topology) -> dict[str, RouterPlan]:
    """Plans for every router, in topology order; UserError when a session has no MD5 key."""
    plan = topo.address_plan()
    unkeyed = [s for s in plan.sessions if not s.md5_password]
    if unkeyed:
        raise UserError(
            [
                Problem(
                    topo.source,
                    f"links[{s.link}].md5_password",
                    f"session {s.upstream.node}-{s.downstream.node} has no TCP-MD5 password: set "
                    "bgp.md5_password or this link's md5_password (every lab session uses MD5)",
                )
                for s in unkeyed
            ]
        )
    plans = {}
    for router in topo.routers:
        neighbors = []
        for session in plan.sessions_of(router.name):
            try:
                neighbors.extend(_neighbors(topo, router.name, session))
            except ValidationError as exc:  # e.g. a password FRR cannot take (a space in it)
                raise UserError(
                    [
                        Problem(
                            topo.source,
                            f"links[{session.link}]",
                            f"session {session.upstream.node}-{session.downstream.node}: "
                            + err["msg"].removeprefix("Value error, "),
                        )
                        for err in exc.errors()
                    ]
                ) from None
        hold = topo.bgp.hold_time
        plans[router.name] = RouterPlan(
            name=router.name,
            asn=router.asn,
            router_id=plan.nodes[router.name].router_id,
            neighbors=tuple(neighbors),
            maximum_paths=max(1, min(128, len(topo.downstream(router.name)))),
            keepalive=max(1, hold // 3),
            hold=hold,
            networks=tuple(_client_prefixes(topo, router.name)),
            bfd=(
                BfdProfile(interval_ms=topo.bfd.interval_ms, multiplier=topo.bfd.multiplier)
                if any(n.bfd for n in neighbors)
                else None  # a router without LB sessions runs no bfdd
            ),
        )
    return plans


def _neighbors(topo: Topology, me: str, session: BgpSession) -> list[Neighbor]:
    peer: Speaker = session.downstream if session.upstream.node == me else session.upstream
    is_lb = peer.kind == "lb"
    assert session.md5_password is not None  # plan_routers refuses unkeyed sessions first
    max_prefix = session.maximum_prefix if is_lb else ROUTER_PEER_MAX_PREFIX
    assert max_prefix is not None  # the address plan sets it on every router-LB session
    out = []
    for family in (4, 6):
        address = peer.interface.ipv4 if family == 4 else peer.interface.ipv6
        if address is None:
            continue
        accept = (
            tuple(p for p in session.lb_prefixes or () if _version(p) == family) if is_lb else ANY
        )
        if is_lb and family == 6 and not accept and not _lb_has_v6(topo, peer.node):
            continue  # an IPv4-only LB in a dual-stack topology needs no IPv6 session
        role = "LB node" if is_lb else f"{topo.router(peer.node).tier} router"
        out.append(
            Neighbor(
                name=neighbor_name(peer.node, family),
                address=str(address.ip),
                remote_as=peer.asn,
                description=f"{peer.node} ({role})",
                password=session.md5_password,
                accept=accept,
                max_prefix=max_prefix,
                is_lb=is_lb,
                ttl_security_hops=LB_SESSION_HOPS if is_lb else None,
                bfd=is_lb and topo.bfd.enabled,
            )
        )
    return out


def _lb_has_v6(topo: Topology, lb: str) -> bool:
    return any(topo.vip(v).version == 6 for v in topo.lb(lb).vips)


def _version(prefix: str) -> int:
    return ipaddress.ip_network(prefix).version


def _client_prefixes(topo: Topology, router: str) -> list[str]:
    clients = [n for n in topo.neighbors(router) if topo.kind(n) == "client"]
    return [p for c in clients for p in topo.client(c).prefixes]
