"""The pure parts of the LB nodes' IPv6 route keeper (lab/programs/route_keeper.py)."""

from __future__ import annotations

import pytest

from anycast_ctl.lab.programs.route_keeper import KeptRoute, changed, parse_routes, usable

R1, R2 = ("fd00:64::8", "eth-r1"), ("fd00:64::e", "eth-r2")
ROUTES = [
    KeptRoute("2001:db8:c1::/64", None, (R1, R2)),
    KeptRoute("2001:db8:c2::/64", None, (R1, R2)),
]


def test_a_link_without_carrier_leaves_the_route_with_the_other_next_hops():
    want = usable(ROUTES, {"eth-r2", "eth-be1"})
    assert want == {"2001:db8:c1::/64": (R2,), "2001:db8:c2::/64": (R2,)}


def test_every_link_up_is_the_full_route_in_its_own_order():
    assert usable(ROUTES, {"eth-r2", "eth-r1"})["2001:db8:c1::/64"] == (R1, R2)


def test_a_route_with_no_usable_next_hop_is_left_alone():
    assert usable(ROUTES, set()) == {}


def test_only_routes_whose_next_hops_differ_are_replaced():
    full = {r.prefix: r.nexthops for r in ROUTES}
    assert changed(full, usable(ROUTES, {"eth-r1", "eth-r2"})) == []
    assert changed(full, usable(ROUTES, {"eth-r2"})) == ["2001:db8:c1::/64", "2001:db8:c2::/64"]


def test_parse_routes_reads_the_lab_file_and_names_a_bad_entry():
    routes = parse_routes(
        [
            {
                "prefix": "2001:db8:c1::/64",
                "source": None,
                "nexthops": [{"gateway": R1[0], "device": R1[1]}],
            }
        ]
    )
    assert routes == [KeptRoute("2001:db8:c1::/64", None, (R1,))]
    with pytest.raises(ValueError, match=r"routes\[0\]"):
        parse_routes([{"prefix": "2001:db8:c1::/64", "nexthops": []}])
    with pytest.raises(ValueError, match="list"):
        parse_routes({"prefix": "x"})
