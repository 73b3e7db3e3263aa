"""Build a topology's network in namespaces: one per node, a veth per link, addresses, static
routes, link MTUs and the routers' sysctls, all from the address plan (render/hostnet.py says
what; this does it through lab/net/netns.py, the one netlink user).

No daemon is started here: see lab/nodes/.
"""

from __future__ import annotations

import ipaddress

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.net import netns
from anycast_ctl.render import hostnet

# Routers forward between links whose return path may differ (multi-tier ECMP, LBs that send
# replies through another router): strict reverse-path filtering would drop such packets.
ROUTER_EXTRA_SYSCTLS = {"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0}


def build_network(tag: str, topo: Topology, plan: AddressPlan | None = None) -> dict[str, str]:
    """Create every node's namespace, link and address, route and sysctl; node -> namespace."""
    plan = plan or topo.address_plan()
    namespaces = {node: netns.create_namespace(tag, node).name for node in topo.kinds}
    for link in topo.links:
        a, b = plan.interface(link.a, link.b), plan.interface(link.b, link.a)
        mtu = hostnet.link_mtu(topo, link.a, link.b)
        netns.add_veth(namespaces[link.a], a.name, namespaces[link.b], b.name, mtu)
    for node, kind in topo.kinds.items():
        ns = namespaces[node]
        if kind == "router":
            for key, value in {
                **hostnet.router_sysctls(topo, node),
                **ROUTER_EXTRA_SYSCTLS,
            }.items():
                netns.set_sysctl(ns, key, hex(value) if key.endswith("hash_fields") else value)
        if kind == "lb":
            for key, value in hostnet.lb_sysctls(topo).items():
                netns.set_sysctl(ns, key, value)
        for device, cidr in hostnet.addresses(plan, node):
            netns.add_address(ns, device, cidr)
        for iface in plan.nodes[node].interfaces:
            netns.set_link_up(ns, iface.name)
        if kind == "client":
            for prefix in hostnet.client_local_prefixes(topo, node):
                netns.add_local_route(ns, prefix)
                # The default route's preferred source (the prefix's first host) must be an
                # address of an interface: IPv6 refuses a `src` that only a local route covers.
                net = ipaddress.ip_network(prefix)
                netns.add_address(ns, "lo", f"{net.network_address + 1}/{net.max_prefixlen}")
    routes = hostnet.static_routes(topo, plan)
    for node, node_routes in routes.items():
        for route in node_routes:
            netns.add_multipath_route(
                namespaces[node],
                route.prefix,
                [(h.gateway, h.device) for h in route.nexthops],
                route.source,
            )
    return namespaces
