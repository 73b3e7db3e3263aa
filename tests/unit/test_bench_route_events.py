"""bench/route_events.py: reading `ip -ts monitor route` blocks into the time a set of
routes lost a next hop."""

from __future__ import annotations

from datetime import datetime

from bench import route_events

GW, OTHER = "100.64.0.3", "100.64.0.5"


def _ts(second: float) -> str:
    return datetime.fromtimestamp(1796228640 + second).isoformat(timespec="microseconds")


def _at(second: float) -> float:
    return datetime.fromisoformat(_ts(second)).timestamp()


def _multipath(second: float, prefix: str, *gateways: str) -> list[str]:
    hops = [f"\tnexthop via {g} dev eth-x weight 1 " for g in gateways]
    return [f"[{_ts(second)}] {prefix} proto bgp metric 20 ", *hops]


def test_parse_reads_multipath_blocks_single_hop_lines_and_deletions_with_their_lengths():
    lines = [
        *_multipath(0.1, "198.19.0.1", OTHER, "100.64.0.7"),
        f"[{_ts(0.2)}] Deleted 198.19.0.2 via {GW} dev eth-lb1 proto bgp metric 20 ",
        f"[{_ts(0.3)}] 2001:db8::/64 via fe80::1 dev eth-lb2 proto bgp metric 20 ",
        f"[{_ts(0.4)}] local 10.0.0.1 dev lo table local proto kernel scope host",
    ]
    events = route_events.parse(lines)
    assert [(e.prefix, e.deleted, set(e.gateways)) for e in events] == [
        ("198.19.0.1/32", False, {OTHER, "100.64.0.7"}),
        ("198.19.0.2/32", True, {GW}),
        ("2001:db8::/64", False, {"fe80::1"}),
    ]
    assert events[0].at == _at(0.1)


def test_left_at_is_the_time_the_last_prefix_lost_the_gateway():
    lines = [
        *_multipath(0.1, "198.19.0.1", OTHER),
        f"[{_ts(0.2)}] Deleted 198.19.0.2 via {GW} dev eth-lb1 proto bgp metric 20 ",
        *_multipath(0.3, "198.19.0.3", GW, OTHER),  # still via the gateway: not yet
        *_multipath(0.5, "198.19.0.3", OTHER),
    ]
    prefixes = ["198.19.0.1/32", "198.19.0.2/32", "198.19.0.3/32"]
    assert route_events.left_at(route_events.parse(lines), prefixes, GW) == _at(0.5)


def test_left_at_is_none_while_one_prefix_keeps_the_gateway_or_got_it_back():
    lines = [*_multipath(0.1, "198.19.0.1", OTHER), *_multipath(0.2, "198.19.0.1", GW, OTHER)]
    events = route_events.parse(lines)
    assert route_events.left_at(events, ["198.19.0.1/32"], GW) is None
    assert route_events.left_at(events[:1], ["198.19.0.1/32", "198.19.0.2/32"], GW) is None
