"""Addresses, static routes and sysctls each node needs outside BGP (hostnet)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.hostnet import (
    UNDERLAY_MTU,
    NextHop,
    addresses,
    lb_underlay,
    link_mtus,
    router_sysctls,
    setup_commands,
    static_routes,
)

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def _hop(plan, node: str, peer: str) -> NextHop:
    return NextHop(str(plan.interface(peer, node).ipv4.ip), plan.interface(node, peer).name)


def test_an_lb_returns_to_each_client_only_through_routers_that_reach_it() -> None:
    topo = load_topology(TOPOLOGIES / "two-routers.yaml")  # r1 serves c1 only, r2 serves c2 only
    plan = topo.address_plan()
    routes = {r.prefix: r.nexthops for r in static_routes(topo)["lb1"]}
    assert routes["198.18.1.0/24"] == (_hop(plan, "lb1", "r1"),)
    assert routes["198.18.2.0/24"] == (_hop(plan, "lb1", "r2"),)
    for be in ("be1", "be2"):
        assert routes[str(plan.nodes[be].loopback_v4)] == (_hop(plan, "lb1", be),)


def test_through_a_spine_tier_every_spine_reaches_every_client() -> None:
    topo = load_topology(TOPOLOGIES / "leaf-spine.yaml")
    plan = topo.address_plan()
    routes = {r.prefix: r.nexthops for r in static_routes(topo)["lb5"]}
    both = (_hop(plan, "lb5", "s1"), _hop(plan, "lb5", "s2"))
    assert routes["198.18.1.0/24"] == routes["198.18.2.0/24"] == both
    assert static_routes(topo)["s1"] == ()  # spines learn client prefixes from the leaves in BGP


def test_a_client_owns_its_prefix_and_sources_its_default_route_from_it() -> None:
    topo = load_topology(TOPOLOGIES / "default.yaml")
    plan = topo.address_plan()
    (default,) = static_routes(topo)["c1"]
    assert default.prefix == "0.0.0.0/0" and default.nexthops == (_hop(plan, "c1", "r1"),)
    assert default.source is not None
    assert ipaddress.ip_address(default.source) in ipaddress.ip_network("198.18.1.0/24")
    cmds = setup_commands(topo, "c1")
    assert cmds.index("ip route replace local 198.18.1.0/24 dev lo") < cmds.index(
        f"ip route replace 0.0.0.0/0 src {default.source} via {default.nexthops[0].gateway}"
        " dev eth-r1"
    )


def test_routers_get_their_own_hashing_sysctls() -> None:
    topo = load_topology(TOPOLOGIES / "two-routers.yaml")  # r2 overrides only the seed
    r1, r2 = router_sysctls(topo, "r1"), router_sysctls(topo, "r2")
    assert r1["net.ipv4.fib_multipath_hash_seed"] == topo.hashing.seed
    assert (
        r2["net.ipv4.fib_multipath_hash_seed"] == topo.hashing_for("r2").seed != topo.hashing.seed
    )
    assert r1["net.ipv4.fib_multipath_hash_policy"] == r2["net.ipv4.fib_multipath_hash_policy"] == 3
    assert r1["net.ipv4.fib_multipath_hash_fields"] == 0x37
    assert (
        f"sysctl -w net.ipv4.fib_multipath_hash_seed={topo.hashing_for('r2').seed}"
        in setup_commands(topo, "r2")
    )


def test_every_planned_address_is_configured_once() -> None:
    topo = load_topology(TOPOLOGIES / "leaf-spine.yaml")
    plan = topo.address_plan()
    for node in plan.nodes:
        cmds = setup_commands(topo, node, plan)
        for device, cidr in addresses(plan, node):
            assert cmds.count(f"ip addr add {cidr} dev {device}") == 1


def test_every_lb_node_reaches_every_other_ones_underlay_through_its_router() -> None:
    topo = load_topology(TOPOLOGIES / "leaf-spine.yaml")  # underlay: each LB's link to s1
    plan = topo.address_plan()
    lbs = [lb.name for lb in topo.lbs]
    for lb in lbs:
        routes = {r.prefix: r.nexthops for r in static_routes(topo)[lb]}
        for peer in lbs:
            underlay = f"{lb_underlay(topo, plan, peer)}/32"
            if peer == lb:
                assert underlay not in routes
            else:
                assert underlay == f"{plan.interface(peer, 's1').ipv4.ip}/32"
                assert routes[underlay] == (_hop(plan, lb, "s1"),)


def test_lb_router_links_carry_a_full_packet_inside_vxlan_on_both_ends() -> None:
    topo = load_topology(TOPOLOGIES / "hybrid.yaml")
    plan = topo.address_plan()
    assert UNDERLAY_MTU >= 1500 + 50  # VXLAN over IPv4: outer IP 20, UDP 8, VXLAN 8, Ethernet 14
    assert link_mtus(topo, plan, "lb2") == [("eth-r1", UNDERLAY_MTU), ("eth-r2", UNDERLAY_MTU)]
    assert link_mtus(topo, plan, "r1") == [(f"eth-lb{i}", UNDERLAY_MTU) for i in (1, 2, 3)]
    assert link_mtus(topo, plan, "u1") == link_mtus(topo, plan, "be1") == []
    assert f"ip link set dev eth-lb1 mtu {UNDERLAY_MTU}" in setup_commands(topo, "r2", plan)
