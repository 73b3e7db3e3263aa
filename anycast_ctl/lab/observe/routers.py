"""Look at a running lab's routers: BGP session states (vtysh) and the kernel FIB (netlink).

Next hops are read from the kernel, in the kernel's order, and named by the address plan:
for hash-threshold ECMP the order decides which flow goes where.
"""

from __future__ import annotations

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.net import netns
from anycast_ctl.lab.nodes import frr
from anycast_ctl.lab.observe.expect import RouterView, canonical


def bgp_states(tag: str, router: str, ns: str, peers: dict[str, str]) -> dict[str, str]:
    """peer name -> FRR state ("Established", "Active", ...); peers maps address -> name."""
    return session_states(tag, router, ns, peers)[0]


def session_states(
    tag: str, router: str, ns: str, peers: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(peer name -> BGP state, peer name -> BFD status of the peers with BFD), from one
    `show bgp neighbors json`; peers maps address -> name."""
    raw = frr.vtysh_json(tag, router, "show bgp neighbors json", netns=ns)
    states: dict[str, str] = {}
    bfd: dict[str, str] = {}
    for address, info in raw.items():
        if not isinstance(info, dict) or "bgpState" not in info:
            continue
        try:
            name = peers.get(canonical(address), address)
        except ValueError:  # an interface-named peer: not in our configs, keep its key
            name = address
        states[name] = info["bgpState"]
        bfd_info = info.get("peerBfdInfo")
        if isinstance(bfd_info, dict) and "status" in bfd_info:
            bfd[name] = str(bfd_info["status"])
    return states, bfd


def fib_nexthops(ns: str, prefix: str, owners: dict[str, str]) -> tuple[list[str], list[str]]:
    """(next-hop node names in kernel order, gateways that belong to no node)."""
    return name_hops(netns.fib_routes(ns, prefix), owners)


def name_hops(hops: list[netns.NextHop], owners: dict[str, str]) -> tuple[list[str], list[str]]:
    """Next hops -> (node names in kernel order, gateways that belong to no node)."""
    names, unknown = [], []
    for hop in hops:
        gateway = hop["gateway"]
        owner = owners.get(canonical(gateway)) if gateway else None
        if owner is None:
            unknown.append(f"{gateway or 'direct'} dev {hop['ifname']}")
        else:
            names.append(owner)
    return names, unknown


def router_view(
    tag: str, topo: Topology, router: str, ns: str, owners: dict[str, str], peers: dict[str, str]
) -> RouterView:
    sessions, bfd = session_states(tag, router, ns, peers)
    view = RouterView(router=router, sessions=sessions, bfd=bfd)
    table = netns.fib_table(ns, [vip.address for vip in topo.vips])
    for vip in topo.vips:
        names, unknown = name_hops(table.get(vip.address, []), owners)
        view.fib[vip.name] = names
        view.unknown_gateways.extend(unknown)
    return view


def prefixes_via(ns: str, prefixes: list[str], gateway: str) -> set[str]:
    """Those of `prefixes` whose route in `ns` has `gateway` among its next hops (one dump)."""
    table = netns.fib_table(ns, prefixes)
    return {p for p, hops in table.items() if any(h["gateway"] == gateway for h in hops)}
