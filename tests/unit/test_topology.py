"""Topology model: shipped files load, lookups follow link order, the address plan is stable."""

import ipaddress
from pathlib import Path

import pytest
import yaml

from anycast_ctl.config.loading import validate
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import UserError

TOPOLOGIES = Path(__file__).parents[2] / "topologies"
SHIPPED = sorted(TOPOLOGIES.glob("*.yaml"))


def default_data() -> dict:
    return yaml.safe_load((TOPOLOGIES / "default.yaml").read_text())


def build(data: dict) -> Topology:
    return validate(Topology, data, "t.yaml")


def problems(data: dict) -> list[str]:
    with pytest.raises(UserError) as info:
        build(data)
    return info.value.lines()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_topology_loads_and_plans(path):
    topo = load_topology(path)
    plan = topo.address_plan()
    assert set(plan.nodes) == set(topo.kinds)


def test_shipped_topologies_have_the_promised_shapes():
    shapes = {}
    for path in SHIPPED:
        t = load_topology(path)
        shapes[path.stem] = (len(t.tiers), len(t.routers), len(t.lbs))
    assert shapes == {
        "default": (1, 1, 3),
        "two-routers": (1, 2, 4),
        "leaf-spine": (2, 4, 8),
        "leaf-spine-per-spine-seeds": (2, 4, 8),
        "hybrid": (2, 3, 3),
        "edge": (1, 1, 2),
    }


def test_the_leaf_spine_variants_differ_only_in_the_second_spines_seed():
    shared = load_topology(TOPOLOGIES / "leaf-spine.yaml")
    own = load_topology(TOPOLOGIES / "leaf-spine-per-spine-seeds.yaml")
    assert shared.hashing_for("s1").seed == shared.hashing_for("s2").seed == 0x51E1
    assert own.hashing_for("s2").seed == 0x51E2 != own.hashing_for("s1").seed
    strip = {"name", "description", "routers"}
    assert shared.model_dump(exclude=strip) == own.model_dump(exclude=strip)
    assert [r.name for r in shared.routers] == [r.name for r in own.routers]


def test_in_the_hybrid_topology_every_client_reaches_both_edge_routers():
    t = load_topology(TOPOLOGIES / "hybrid.yaml")
    assert t.tiers == ["upstream", "edge"]
    for client in t.clients:
        (upstream,) = t.neighbors(client.name)
        assert t.downstream(upstream) == ["r1", "r2"]
    assert t.downstream("r1") == t.downstream("r2") == ["lb1", "lb2", "lb3"]


def test_downstream_next_hops_follow_link_order():
    data = default_data()
    data["links"][1:4] = [{"a": "r1", "b": "lb3"}, {"a": "lb1", "b": "r1"}, {"a": "r1", "b": "lb2"}]
    assert build(data).downstream("r1") == ["lb3", "lb1", "lb2"]


def test_router_hashing_overrides_only_the_fields_it_sets():
    data = default_data()
    data["hashing"] = {"algorithm": "linux", "seed": 7, "fields": "0x13"}
    data["routers"][0]["hashing"] = {"seed": "0x10", "weights": {"lb2": 3}}
    h = build(data).hashing_for("r1")
    assert (h.algorithm, h.seed, h.fields, h.policy, h.weights) == (
        "linux",
        16,
        0x13,
        3,
        {"lb2": 3},
    )


def test_defaults_are_predictable_linux_hashing():
    data = default_data()
    del data["hashing"]
    h = build(data).hashing_for("r1")
    assert (h.algorithm, h.policy, h.fields, h.table_size) == (
        "linux",
        3,
        0x37,
        65537,
    ) and h.seed != 0


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_address_plan_is_consistent(path):
    topo = load_topology(path)
    plan = topo.address_plan()
    seen = set()
    for node in plan.nodes.values():
        names = [i.name for i in node.interfaces]
        assert len(names) == len(set(names)) and all(len(n) <= 15 for n in names)
        seen.add(node.loopback_v4.ip)
        assert node.router_id == str(node.loopback_v4.ip)
        for iface in node.interfaces:
            peer = plan.interface(iface.peer, node.name)
            assert peer.ipv4.network == iface.ipv4.network and peer.ipv4.ip != iface.ipv4.ip
            assert iface.ipv4.network.prefixlen == 31
            seen.add(iface.ipv4.ip)
    n_ifaces = sum(len(n.interfaces) for n in plan.nodes.values())
    assert len(seen) == len(plan.nodes) + n_ifaces  # nothing assigned twice
    pool = ipaddress.ip_network(topo.addressing.ipv4)
    assert all(a in pool and a not in ipaddress.ip_network("10.0.0.0/8") for a in seen)


def test_address_plan_is_stable_and_follows_link_order():
    first = load_topology(TOPOLOGIES / "default.yaml").address_plan()
    again = load_topology(TOPOLOGIES / "default.yaml").address_plan()
    assert first == again
    link1 = first.interface("r1", "lb1")
    assert (str(link1.ipv4), str(first.interface("lb1", "r1").ipv4), link1.name) == (
        "100.64.0.2/31",
        "100.64.0.3/31",
        "eth-lb1",
    )
    assert first.nodes["r1"].router_id == "100.64.255.1"


def test_custom_pool_and_ipv6_vip_give_v6_link_and_loopback_addresses():
    data = default_data()
    data["addressing"] = {"ipv4": "172.31.0.0/22", "ipv6": "fd00:beef::/56"}
    data["clients"][0]["prefixes"].append("2001:db8:c1::/64")
    data["vips"].append({"name": "web6", "address": "2001:db8::10", "backends": ["be1"]})
    for lb in data["lbs"]:
        lb["vips"].append("web6")
    plan = build(data).address_plan()
    r1 = plan.interface("r1", "lb1")
    assert str(r1.ipv4) == "172.31.0.2/31" and str(r1.ipv6) == "fd00:beef::2/127"
    assert str(plan.nodes["r1"].loopback_v4) == "172.31.3.1/32"
    assert str(plan.nodes["r1"].loopback_v6) == "fd00:beef:0:ff::1/128"


def test_no_ipv6_addresses_without_an_ipv6_vip():
    plan = load_topology(TOPOLOGIES / "default.yaml").address_plan()
    assert all(
        n.loopback_v6 is None and all(i.ipv6 is None for i in n.interfaces)
        for n in plan.nodes.values()
    )


def test_bgp_sessions_carry_lb_prefixes_limits_and_md5_override():
    data = default_data()
    data["links"][2]["md5_password"] = "other"
    data["lbs"][1]["maximum_prefix"] = 3
    plan = build(data).address_plan()
    assert [(s.upstream.node, s.lb) for s in plan.sessions] == [
        ("r1", "lb1"),
        ("r1", "lb2"),
        ("r1", "lb3"),
    ]
    lb2 = plan.sessions_of("lb2")[0]
    assert (lb2.md5_password, lb2.maximum_prefix, lb2.lb_prefixes) == (
        "other",
        3,
        ("192.0.2.10/32",),
    )
    assert (lb2.upstream.asn, lb2.downstream.asn) == (65000, 65102)
    assert plan.sessions_of("lb1")[0].md5_password == "anycast-lab"


def test_router_to_router_sessions_have_no_lb_limits():
    plan = load_topology(TOPOLOGIES / "leaf-spine.yaml").address_plan()
    s = next(s for s in plan.sessions if s.upstream.node == "l1" and s.downstream.node == "s1")
    assert (s.lb, s.lb_prefixes, s.maximum_prefix) == (None, None, None)


def test_every_problem_is_reported_at_once():
    data = default_data()
    data["links"][1]["b"] = "r9"
    data["lbs"][0]["vips"] = ["nope"]
    lines = problems(data)
    assert lines == [
        "t.yaml: lbs[0].vips[0]: no VIP named 'nope' (known: web)",
        "t.yaml: links[1].b: no node named 'r9'",
    ]


def test_too_small_pool_is_refused_at_load():
    data = default_data()
    data["addressing"] = {"ipv4": "100.64.0.0/24"}
    assert problems(data) == [
        "t.yaml: addressing.ipv4: /24 is too small: the pool must be /23 or larger"
    ]


def test_node_names_must_fit_interface_names():
    data = default_data()
    data["lbs"][0]["name"] = "a-very-long-name"
    assert any(
        line.startswith("t.yaml: lbs[0].name: String should match pattern")
        for line in problems(data)
    )


def test_client_with_two_links_is_refused():
    data = default_data()
    data["routers"].append({"name": "r2", "asn": 65001, "tier": "edge"})
    data["links"] += [{"a": "c1", "b": "r2"}, {"a": "r2", "b": "lb1"}]
    assert problems(data) == [
        "t.yaml: clients[0]: client c1 must have exactly one link (to a first-tier router), has 2"
    ]
