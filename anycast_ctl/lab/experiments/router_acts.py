"""Failure and maintenance of a router, for `lab failover` (router-kill, router-drain).

    routers = redundant_routers(topo)          # pure: routers another router can stand in for
    ev_pids = kill_router(lab, "r1", signal.SIGKILL)   # daemons and links, at once
    withdraw_upstream(lab, "r1")               # maintenance: upstream stops using r1
    bring_back(lab, "r1")                      # links up, static routes, FRR started again

A router can be taken out only when someone else carries its traffic: every upstream
neighbour (a router of an earlier tier, or a client) must also reach another router of its
tier. A client has one link, so a client-facing router is never redundant (leaf-spine's
leaves); the spines are, and so are hybrid.yaml's edge routers.

The drain withdraws every route toward the router's upstream neighbours with an outbound
deny-all route-map, keeping the sessions (and the routes it learns from them, so the return
traffic the LB nodes still send through it finds its way): upstream routers then spread the
flows over the remaining routers, and the router can go.
"""

from __future__ import annotations

import ipaddress
import signal

from anycast_ctl.config.topology import Topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import daemons, netns
from anycast_ctl.lab.nodes import frr
from anycast_ctl.lab.observe.expect import session_peers
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.render import hostnet
from anycast_ctl.render.plan import neighbor_node

DRAIN_MAP = "RM-LAB-DRAIN-OUT"


def upstream_neighbors(topo: Topology, router: str) -> list[str]:
    """Neighbours of `router` on the clients' side (clients, routers of earlier tiers)."""
    mine = topo.tier_index(router)
    return [n for n in topo.neighbors(router) if topo.tier_index(n) < mine]


def redundant_routers(topo: Topology) -> list[str]:
    """Routers whose every upstream neighbour also reaches another router of the same tier
    (the ones a router scenario can act on), in topology order."""
    out = []
    for router in topo.routers:
        ups = upstream_neighbors(topo, router.name)
        peers = set(topo.routers_in(router.tier)) - {router.name}
        if ups and all(peers & set(topo.neighbors(u)) for u in ups):
            out.append(router.name)
    return out


def pick_router(topo: Topology, router: str | None) -> str:
    """The router a router scenario acts on: `router` if given and redundant, else the first
    redundant one. UserError (exit 2) when there is none."""
    candidates = redundant_routers(topo)
    if router is None and candidates:
        return candidates[0]
    if router is not None and router in candidates:
        return router
    if not candidates:
        what = (
            f"topology {topo.name} has no router that another router of its tier can stand in "
            "for (router-kill and router-drain need a tier with more than one router, each "
            "reached by all the same upstream neighbours)"
        )
    else:
        what = f"{router!r} cannot be taken out: no other router carries its traffic " + (
            f"(candidates: {', '.join(candidates)})"
        )
    raise UserError.single("<argument>", "--router", what)


def _links(lab: LabHandle, router: str) -> list[str]:
    return [lab.plan.interface(router, peer).name for peer in lab.topology.neighbors(router)]


def kill_router(lab: LabHandle, router: str, sig: int) -> dict[str, int]:
    """Take every link of the router down (in one netlink session) and signal its FRR daemons
    (SIGKILL: a crash; SIGTERM: switched off). Returns the pids signalled. The links go
    first: they are what the neighbours notice, and a kernel left forwarding without its
    routing daemons (whose routes go with the links) would only blur the moment."""
    found = list(reversed(frr.in_start_order(lab.daemons().get(router, {}))))
    netns.set_links_down(lab.namespace(router), _links(lab, router))
    return {d.name: d.pid for d in found if daemons.send_signal(d, sig)}


def _vtysh_config(lab: LabHandle, router: str, lines: list[str]) -> None:
    argv = ["vtysh", "-N", lab.namespace(router), "-c", "configure terminal"]
    for line in lines:
        argv += ["-c", line]
    result = daemons.run(lab.tag, argv, timeout=15)
    # The lab's FRR has no vtysh.conf (integrated config, written by us): vtysh says so.
    problems = "\n".join(
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "vtysh.conf" not in line
    )
    if not result.ok or problems:
        raise LabError(f"vtysh on {router}: {lines!r}: {problems or result.returncode}")


def upstream_sessions(topo: Topology, router: str) -> dict[str, str]:
    """The router's BGP sessions with its upstream neighbours: {peer address: neighbor name}.
    A dual-stack neighbour has two, the IPv4 one and the IPv6 one ("u1-v6"): both count."""
    ups = set(upstream_neighbors(topo, router))
    return {
        addr: name
        for addr, name in session_peers(topo)[router].items()
        if neighbor_node(name) in ups
    }


def drain_lines(topo: Topology, router: str) -> list[str]:
    """The vtysh configuration lines of the drain (pure): a deny-all route-map out on every
    upstream session, in the session's own address family."""
    peers = upstream_sessions(topo, router)
    lines = [f"route-map {DRAIN_MAP} deny 10", "exit", f"router bgp {topo.router(router).asn}"]
    for version in sorted({ipaddress.ip_address(addr).version for addr in peers}):
        lines.append(f"address-family ipv{version} unicast")
        # each session carries one family: an IPv6 peer's line in the IPv4 family is refused
        lines += [
            f"neighbor {addr} route-map {DRAIN_MAP} out"
            for addr in peers
            if ipaddress.ip_address(addr).version == version
        ]
        lines.append("exit-address-family")
    return lines


def withdraw_upstream(lab: LabHandle, router: str) -> list[str]:
    """Stop announcing anything to the router's upstream BGP neighbours (sessions stay up).
    Returns the sessions' neighbor names."""
    peers = upstream_sessions(lab.topology, router)
    _vtysh_config(lab, router, drain_lines(lab.topology, router))
    for addr in peers:  # send the withdrawals now rather than at the next update round
        frr.vtysh(lab.tag, router, f"clear bgp {addr} soft out", netns=lab.namespace(router))
    return sorted(peers.values())


def intact(lab: LabHandle, router: str) -> bool:
    """Its FRR daemons run, and no drain is configured (an interrupted run leaves neither)."""
    found = frr.in_start_order(lab.daemons().get(router, {}))
    if len(found) < 2 or not all(d.running() for d in found):
        return False
    try:
        config = frr.vtysh(lab.tag, router, "show running-config", netns=lab.namespace(router))
    except LabError:
        return False
    return DRAIN_MAP not in config


def bring_back(lab: LabHandle, router: str, timeout: float = 30.0) -> list[str]:
    """FRR restarted from its rendered config (which has no drain), upstream first: the
    links toward the clients' side come up, FRR starts, and only once the router holds a
    route to every client prefix do its downstream links come up. LB nodes send their return
    traffic over every router whose link is up (static routes), so a router that came back
    before it knew the way to the clients would swallow it. Returns what had to be done."""
    done, ns, topo = [], lab.namespace(router), lab.topology
    ups = set(upstream_neighbors(topo, router))
    for peer in topo.neighbors(router):
        if peer in ups:
            netns.set_link_up(ns, lab.plan.interface(router, peer).name)  # idempotent
    for route in hostnet.static_routes(lab.topology, lab.plan).get(router, ()):
        if not netns.fib_routes(ns, route.prefix):
            netns.add_multipath_route(
                ns, route.prefix, [(h.gateway, h.device) for h in route.nexthops], route.source
            )
            done.append(f"route {route.prefix}")
    running = frr.in_start_order(lab.daemons().get(router, {}))
    if any(d.running() for d in running):
        for d in reversed(running):
            daemons.stop(d, signal.SIGTERM)
        done.append("FRR stopped")
    frr.start_frr(lab.tag, router, netns=ns)
    done.append("FRR started")
    prefixes = [p for c in topo.clients for p in c.prefixes]

    def routes_to_clients() -> bool:
        return all(netns.fib_routes(ns, p) for p in prefixes)

    wait_for(routes_to_clients, timeout, what=f"{router} to learn the clients' prefixes")
    for peer in topo.neighbors(router):
        if peer not in ups:
            netns.set_link_up(ns, lab.plan.interface(router, peer).name)
    return done
