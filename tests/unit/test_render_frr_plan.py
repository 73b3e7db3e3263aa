"""RouterPlan validation and the policy render_frr derives from it (no golden file needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from anycast_ctl.render.frr import Neighbor, RouterPlan, render_frr


def lb(**over) -> Neighbor:
    fields = dict(
        name="lb1",
        address="10.1.1.2",
        remote_as=65101,
        password="k",
        is_lb=True,
        accept=("192.0.2.10/32",),
        max_prefix=1,
    )
    return Neighbor(**{**fields, **over})


def plan(*neighbors: Neighbor, **over) -> RouterPlan:
    return RouterPlan(
        **{"name": "r1", "asn": 65000, "router_id": "10.255.0.1", "neighbors": neighbors, **over}
    )


@pytest.mark.parametrize(
    "over, message",
    [
        ({"accept": "any"}, "must list the exact VIPs"),
        ({"accept": ("2001:db8::10/128",)}, "not IPv4 like the session address"),
        ({"accept": ("192.0.2.0/24",)}, "host route"),
        ({"password": "two words"}, "without spaces"),
        ({"password": "x" * 81}, "1-80 printable"),
        ({"description": "evil\nrouter bgp 1"}, "control characters"),
        ({"name": "bad name"}, "string should match pattern"),
    ],
)
def test_neighbor_rejects_unsafe_or_inconsistent_policy(over, message) -> None:
    with pytest.raises(ValidationError) as err:
        lb(**over)
    assert message.lower() in str(err.value).lower()


@pytest.mark.parametrize(
    "neighbors, over, message",
    [
        ((lb(), lb(address="10.1.1.3")), {}, "neighbor names must be unique; repeated: lb1"),
        ((lb(), lb(name="lb2")), {}, "neighbor addresses must be unique; repeated: 10.1.1.2"),
        ((), {"keepalive": 2, "hold": 5}, "at least 3 x keepalive"),
        (
            (),
            {"router_id": "300.1.1.1"},
            "router_id\n  Value error, Octet 300 (> 255) not permitted",
        ),
        (
            (),
            {"networks": ("10.0.0.1/24",)},
            "networks.0\n  Value error, 10.0.0.1/24 has host bits set",
        ),
    ],
)
def test_router_plan_rejects_inconsistent_settings(neighbors, over, message) -> None:
    with pytest.raises(ValidationError) as err:
        plan(*neighbors, **over)
    assert message in str(err.value)


def test_lb_peer_gets_a_host_routes_only_prefix_list_and_sends_nothing() -> None:
    text = render_frr(plan(lb(accept=("192.0.2.10/32", "192.0.2.11/32"), max_prefix=2)))
    lines = text.splitlines()
    # two adjacent VIPs: one range entry that accepts exactly their two host routes
    assert "ip prefix-list PL4-lb1-IN seq 5 permit 192.0.2.10/31 ge 32 le 32" in lines
    assert "ip prefix-list PL4-lb1-IN seq 100000 deny 0.0.0.0/0 le 32" in lines
    # host routes only: a range permits no other length, so no more-specific or aggregate
    permits = [ln for ln in lines if " permit " in ln and "prefix-list" in ln]
    assert permits == ["ip prefix-list PL4-lb1-IN seq 5 permit 192.0.2.10/31 ge 32 le 32"]
    assert "route-map RM-lb1-OUT deny 10" in lines
    assert "  neighbor 10.1.1.2 maximum-prefix 2" in lines
    assert " neighbor 10.1.1.2 password k" in lines


def test_router_peer_accepts_and_exports_everything() -> None:
    core = Neighbor(
        name="r2", address="10.0.12.2", remote_as=65001, password="k", accept="any", max_prefix=100
    )
    text = render_frr(plan(core))
    assert "route-map RM-r2-IN permit 10\nexit" in text
    assert "route-map RM-r2-OUT permit 10\nexit" in text
    assert "prefix-list PL4-r2" not in text


def test_ecmp_and_zebra_settings_present_in_each_family() -> None:
    v6 = lb(name="lb1v6", address="2001:db8:1::2", accept=("2001:db8:f::10/128",))
    text = render_frr(plan(lb(), v6, maximum_paths=4))
    assert text.count("  maximum-paths 4\n") == 2
    assert " bgp bestpath as-path multipath-relax\n" in text
    assert "\nno zebra nexthop kernel enable\n" in text
    assert "ipv6 prefix-list PL6-lb1v6-IN seq 5 permit 2001:db8:f::10/128" in text
    assert " address-family ipv6 unicast\n" in text


def test_family_without_neighbors_or_networks_is_left_out() -> None:
    assert "address-family ipv6" not in render_frr(plan(lb()))
