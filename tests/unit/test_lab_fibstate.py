"""lab/observe/fibstate.py: decoding route messages, questions about a next-hop timeline (no
root)."""

from __future__ import annotations

import ipaddress
import socket

from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWROUTE
from pyroute2.netlink.rtnl.rtmsg import RTNH_F_DEAD, rtmsg

from anycast_ctl.lab.observe.fibstate import (
    FibSample,
    Hop,
    RouteTable,
    RouteUpdate,
    decode_route,
    departures_between,
    first_time,
    state_at,
    with_any,
    without,
)

VIP = ipaddress.ip_network("192.0.2.10/32")


def wire(
    kind=RTM_NEWROUTE,
    dst="192.0.2.10",
    dst_len=32,
    table=254,
    metric=20,
    hops=(),
    gateway=None,
    family=socket.AF_INET,
) -> rtmsg:
    """Encode a route message as the kernel would send it, then parse it back."""
    m = rtmsg()
    m["header"]["type"] = kind
    m["family"], m["dst_len"], m["table"] = family, dst_len, table
    attrs = [("RTA_DST", dst), ("RTA_PRIORITY", metric)]
    if hops:
        attrs.append(
            (
                "RTA_MULTIPATH",
                [
                    {"oif": oif, "hops": weight - 1, "flags": flags, "attrs": [("RTA_GATEWAY", gw)]}
                    for gw, oif, flags, weight in hops
                ],
            )
        )
    if gateway:
        attrs += [("RTA_GATEWAY", gateway), ("RTA_OIF", 2)]
    m["attrs"] = attrs
    m.encode()
    parsed = rtmsg(m.data)
    parsed.decode()
    return parsed


def test_multipath_message_decodes_every_nexthop():
    update = decode_route(wire(hops=[("10.0.0.1", 3, 0, 1), ("10.0.0.3", 4, RTNH_F_DEAD, 2)]), VIP)
    assert update == RouteUpdate(
        RTM_NEWROUTE,
        (20, 0),
        frozenset({Hop("10.0.0.1", 3, 0, 1), Hop("10.0.0.3", 4, RTNH_F_DEAD, 2)}),
    )


def test_single_path_message():
    update = decode_route(wire(gateway="10.0.0.5"), VIP)
    assert update.hops == frozenset({Hop("10.0.0.5", 2, 0, 1)})


def test_other_prefixes_tables_and_families_are_ignored():
    assert decode_route(wire(dst="192.0.2.11", gateway="10.0.0.5"), VIP) is None
    assert decode_route(wire(dst_len=24, dst="192.0.2.0", gateway="10.0.0.5"), VIP) is None
    assert decode_route(wire(table=255, gateway="10.0.0.5"), VIP) is None
    six = wire(family=socket.AF_INET6, dst="fd00::10", dst_len=128, gateway="fd00::1")
    assert decode_route(six, VIP) is None
    assert decode_route(six, ipaddress.ip_network("fd00::10/128")) is not None


def hops(*gws: str) -> frozenset[Hop]:
    return frozenset(Hop(gw, 1, 0, 1) for gw in gws)


def test_ipv4_delete_removes_the_route_and_lowest_metric_wins():
    table = RouteTable(4)
    table.apply(RouteUpdate(RTM_NEWROUTE, (100, 0), hops("a")))
    table.apply(RouteUpdate(RTM_NEWROUTE, (20, 0), hops("b", "c")))
    assert table.hops() == hops("b", "c")
    table.apply(RouteUpdate(RTM_DELROUTE, (20, 0), hops("b")))  # v4: the whole route goes
    assert table.hops() == hops("a")


def test_ipv6_delete_removes_only_the_listed_siblings():
    table = RouteTable(6)
    table.apply(RouteUpdate(RTM_NEWROUTE, (1024, 0), hops("a", "b")))
    table.apply(RouteUpdate(RTM_DELROUTE, (1024, 0), hops("a")))
    assert table.hops() == hops("b")
    table.apply(RouteUpdate(RTM_DELROUTE, (1024, 0), hops("b")))
    assert table.hops() == frozenset()


def test_dead_nexthops_are_not_in_use():
    sample = FibSample(0.0, frozenset({Hop("a", 1, 0, 1), Hop("b", 2, RTNH_F_DEAD, 1)}))
    assert sample.gateways == {"a"}


TIMELINE = [
    FibSample(1.0, hops("a", "b")),
    FibSample(2.0, hops("b")),
    FibSample(3.0, hops("a", "b")),
]


def test_state_at_is_the_last_sample_not_after():
    assert state_at(TIMELINE, 0.5) is None
    assert state_at(TIMELINE, 2.0) is TIMELINE[1]
    assert state_at(TIMELINE, 2.9) is TIMELINE[1]


def test_first_time_counts_from_since_or_the_first_later_sample():
    assert first_time(TIMELINE, 1.5, without({"a"})) == 2.0
    assert first_time(TIMELINE, 2.5, without({"a"})) == 2.5  # already out at `since`
    assert first_time(TIMELINE, 2.5, with_any({"a"})) == 3.0
    assert first_time(TIMELINE, 3.5, without({"b"})) is None


def test_departures_between_counts_each_withdrawal_once():
    later = [FibSample(4.0, hops("b")), FibSample(4.5, hops()), FibSample(5.0, hops("a"))]
    flapping = [*TIMELINE, *later]
    assert departures_between(flapping, 2.5, 10, {"a"}) == 1  # out at the start, again at 4
    assert departures_between(flapping, 2.5, 3.5, {"a"}) == 0
    assert departures_between(flapping, 1.0, 10, {"a"}) == 2  # out at 2 and at 4 (4.5 too)
    assert departures_between(flapping, 1.0, 3.5, {"a"}) == 1
    assert departures_between(flapping, 1.0, 10, {"b"}) == 1  # gone at 4.5 only
    assert departures_between(flapping, 0.5, 10, {"a"}) == 2  # counted from its first sample
