"""router_plans: what each router of a topology peers with, accepts and originates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.render.frr import ANY
from anycast_ctl.render.plan import ROUTER_PEER_MAX_PREFIX, router_plans

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def _raw(name: str) -> dict:
    return yaml.safe_load((TOPOLOGIES / f"{name}.yaml").read_text())


def test_default_router_accepts_exactly_each_lbs_vip_with_topology_md5_and_limits() -> None:
    topo = load_topology(TOPOLOGIES / "default.yaml")
    r1 = router_plans(topo)["r1"]
    plan = topo.address_plan()
    assert r1.asn == 65000 and r1.router_id == plan.nodes["r1"].router_id
    assert [n.name for n in r1.neighbors] == ["lb1", "lb2", "lb3"]
    for n in r1.neighbors:
        assert n.is_lb and n.accept == ("192.0.2.10/32",)
        assert n.address == str(plan.interface(n.name, "r1").ipv4.ip)
        assert n.remote_as == topo.lb(n.name).asn
        assert n.password == "anycast-lab" and n.max_prefix == 10
    assert r1.maximum_paths == 3  # one path per LB node
    assert (r1.keepalive, r1.hold) == (3, 9)
    assert r1.networks == ("198.18.1.0/24",)


def test_each_lb_may_announce_only_its_own_vips() -> None:
    r2 = router_plans(load_topology(TOPOLOGIES / "two-routers.yaml"))["r2"]
    accepts = {n.name: n.accept for n in r2.neighbors}
    assert accepts == {
        "lb1": ("192.0.2.10/32",),
        "lb2": ("192.0.2.10/32",),
        "lb3": ("192.0.2.10/32", "192.0.2.20/32"),
        "lb4": ("192.0.2.10/32", "192.0.2.20/32"),
    }


def test_router_router_sessions_accept_anything_and_limits_are_per_lb() -> None:
    raw = _raw("leaf-spine")
    raw["lbs"][0]["maximum_prefix"] = 3
    plans = router_plans(Topology.model_validate(raw))
    l1 = plans["l1"]
    assert [(n.name, n.accept, n.is_lb) for n in l1.neighbors] == [
        ("s1", ANY, False),
        ("s2", ANY, False),
    ]
    assert all(n.max_prefix == ROUTER_PEER_MAX_PREFIX for n in l1.neighbors)
    s1 = {n.name: n for n in plans["s1"].neighbors}
    assert s1["l1"].remote_as == 65001 and s1["l1"].accept == ANY
    assert s1["lb1"].max_prefix == 3 and s1["lb2"].max_prefix == 10


def test_ipv6_vip_gets_its_own_ipv6_session_only_where_announced() -> None:
    raw = _raw("two-routers")
    raw["vips"][1]["address"] = "2001:db8:f::20"  # "api", announced by lb3 and lb4 only
    plans = router_plans(Topology.model_validate(raw))
    r1 = {n.name: n for n in plans["r1"].neighbors}
    assert r1["lb3-v6"].accept == ("2001:db8:f::20/128",) and r1["lb3-v6"].family == 6
    assert r1["lb3"].accept == ("192.0.2.10/32",)
    assert "lb1-v6" not in r1  # lb1 announces no IPv6 VIP


def test_missing_md5_password_names_the_link() -> None:
    raw = _raw("default")
    del raw["bgp"]["md5_password"]
    raw["links"][2]["md5_password"] = "only-this-one"
    with pytest.raises(UserError) as err:
        router_plans(Topology.model_validate(raw))
    assert [p.where for p in err.value.problems] == [
        "links[1].md5_password",
        "links[3].md5_password",
    ]


def test_md5_password_frr_cannot_take_is_refused_at_load_naming_the_field() -> None:
    # Refused when the topology is read, so `sim` and `render node` refuse it too, not only
    # `render frr`.
    from anycast_ctl.config.loading import validate

    raw = _raw("default")
    raw["links"][1]["md5_password"] = "has space"
    with pytest.raises(UserError) as err:
        validate(Topology, raw, "t.yaml")
    assert str(err.value) == (
        "t.yaml: links[1].md5_password: a TCP-MD5 password is 1-80 printable ASCII "
        "characters without spaces; it contains a space"
    )
