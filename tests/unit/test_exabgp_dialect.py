"""The pure ExaBGP adapter: typed VIPs -> API lines, API output -> events.

Expected lines are the syntax checked against real ExaBGP 4.2.25 and 5.0.15 with FRR 8.4
(docs/exabgp.md); tests/integration/test_exabgp_real.py replays them against the real thing.
"""

from __future__ import annotations

import random

import pytest

from anycast_ctl.agent.exabgp import (
    DIALECTS,
    Ack,
    PeerState,
    RouteWriter,
    Shutdown,
    UndeclaredPrefix,
    Unknown,
    announce_line,
    carriers,
    parse_line,
    withdraw_line,
)
from anycast_ctl.config.node import Bgp, NodeConfig, Vip

EBGP = Bgp.model_validate(
    {
        "local_as": 65101,
        "router_id": "10.0.0.11",
        "neighbors": [
            {"address": "10.0.1.1", "local_address": "10.0.1.11", "peer_as": 65000},
            {"address": "fd00:1::1", "local_address": "fd00:1::11", "peer_as": 65000},
        ],
    }
)
IBGP = Bgp.model_validate(
    {
        "local_as": 65101,
        "router_id": "10.0.0.11",
        "neighbors": [{"address": "10.0.1.1", "local_address": "10.0.1.11", "peer_as": 65101}],
    }
)
MIXED = Bgp.model_validate(
    {
        "local_as": 65101,
        "router_id": "10.0.0.11",
        "neighbors": [
            {"address": "10.0.1.1", "local_address": "10.0.1.11", "peer_as": 65000},
            {"address": "10.0.2.1", "local_address": "10.0.2.11", "peer_as": 65101},
        ],
    }
)


def vip(**fields) -> Vip:
    return Vip.model_validate({"address": "192.0.2.10/32", "checks": ["c"], **fields})


ANNOUNCE_CASES = [
    # (VIP fields, BGP, expected line)
    ({}, EBGP, "announce route 192.0.2.10/32 next-hop self"),
    ({"address": "192.0.2.10"}, EBGP, "announce route 192.0.2.10/32 next-hop self"),
    ({"address": "2001:DB8:0::10"}, EBGP, "announce route 2001:db8::10/128 next-hop self"),
    ({"next_hop": "10.9.9.9"}, EBGP, "announce route 192.0.2.10/32 next-hop 10.9.9.9"),
    ({"med": 0}, EBGP, "announce route 192.0.2.10/32 next-hop self med 0"),
    (
        {"med": 4294967295, "local_preference": 200},
        EBGP,
        "announce route 192.0.2.10/32 next-hop self med 4294967295 local-preference 200",
    ),
    # an explicit as-path is sent verbatim: eBGP needs the local AS once more than the prepend
    (
        {"as_path_prepend": 2},
        EBGP,
        "announce route 192.0.2.10/32 next-hop self as-path [ 65101 65101 65101 ]",
    ),
    (
        {"as_path_prepend": 2},
        IBGP,
        "announce route 192.0.2.10/32 next-hop self as-path [ 65101 65101 ]",
    ),
    (
        {"communities": ["65000:1", "0:0"]},
        EBGP,
        "announce route 192.0.2.10/32 next-hop self community [ 65000:1 0:0 ]",
    ),
    # names become numbers: 'graceful-shutdown' would trigger ExaBGP's shutdown command
    (
        {
            "communities": [
                "no-export",
                "no-advertise",
                "no-export-subconfed",
                "blackhole",
                "graceful-shutdown",
            ]
        },
        EBGP,
        "announce route 192.0.2.10/32 next-hop self community"
        " [ 65535:65281 65535:65282 65535:65283 65535:666 65535:0 ]",
    ),
    (
        {"large_communities": ["65101:1:2", "4294967295:0:4294967295"]},
        EBGP,
        "announce route 192.0.2.10/32 next-hop self large-community"
        " [ 65101:1:2 4294967295:0:4294967295 ]",
    ),
    # RFC 4360 two-octet AS (type 0x00), IPv4 (0x01), RFC 5668 four-octet AS (0x02);
    # subtypes: RT 0x02, SoO 0x03
    (
        {"extended_communities": ["target:65000:100", "origin:65000:7"]},
        EBGP,
        "announce route 192.0.2.10/32 next-hop self extended-community"
        " [ 0x0002fde800000064 0x0003fde800000007 ]",
    ),
    (
        {"extended_communities": ["target:192.0.2.1:9", "target:4200000000:5"]},
        EBGP,
        "announce route 192.0.2.10/32 next-hop self extended-community"
        " [ 0x0102c00002010009 0x0202fa56ea000005 ]",
    ),
    ({"path_id": 7}, EBGP, "announce route 192.0.2.10/32 next-hop self path-information 7"),
    ({"path_id": 0}, EBGP, "announce route 192.0.2.10/32 next-hop self path-information 0"),
    (
        {
            "med": 1,
            "local_preference": 2,
            "as_path_prepend": 1,
            "communities": ["1:2"],
            "large_communities": ["1:2:3"],
            "extended_communities": ["target:1:2"],
            "path_id": 3,
        },
        EBGP,
        "announce route 192.0.2.10/32 next-hop self med 1 local-preference 2"
        " as-path [ 65101 65101 ] community [ 1:2 ] large-community [ 1:2:3 ]"
        " extended-community [ 0x0002000100000002 ] path-information 3",
    ),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("fields", "bgp", "expected"), ANNOUNCE_CASES)
def test_announce_line_renders_each_attribute(dialect, fields, bgp, expected):
    assert announce_line(vip(**fields), bgp, dialect) == expected


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "withdraw route 192.0.2.10/32"),
        ({"address": "2001:db8::10/128", "med": 5}, "withdraw route 2001:db8::10/128"),
        # the NLRI is prefix + path-id: without the path-id ExaBGP would not find the route
        ({"path_id": 7, "communities": ["1:1"]}, "withdraw route 192.0.2.10/32 path-information 7"),
    ],
)
def test_withdraw_line_names_only_the_nlri(dialect, fields, expected):
    assert withdraw_line(vip(**fields), EBGP, dialect) == expected


@pytest.mark.parametrize(
    ("communities", "expected"),
    [
        ([], "community [ 65535:0 ]"),
        (["65000:1"], "community [ 65000:1 65535:0 ]"),
        (["graceful-shutdown"], "community [ 65535:0 ]"),  # not twice
        (["65535:0", "1:1"], "community [ 65535:0 1:1 ]"),
    ],
)
def test_graceful_shutdown_adds_the_well_known_community_once(communities, expected):
    line = announce_line(vip(communities=communities), EBGP, "5.0", graceful_shutdown=True)
    assert line == f"announce route 192.0.2.10/32 next-hop self {expected}"


def test_as_path_prepend_refuses_a_mix_of_ebgp_and_ibgp_neighbors():
    with pytest.raises(ValueError, match="to be eBGP or all iBGP"):
        announce_line(vip(as_path_prepend=1), MIXED, "5.0")
    assert announce_line(vip(), MIXED, "5.0") == "announce route 192.0.2.10/32 next-hop self"


@pytest.mark.parametrize("dialect", ["4.1", "6.0", "", "5.0\n"])
def test_unknown_dialects_are_refused(dialect):
    with pytest.raises(ValueError, match="dialect"):
        announce_line(vip(), EBGP, dialect)
    with pytest.raises(ValueError, match="dialect"):
        withdraw_line(vip(), EBGP, dialect)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("communities", ["65000:1\nshutdown"]),
        ("large_communities", ["1:2:3\rannounce route 10.0.0.0/8 next-hop self"]),
        ("extended_communities", ["target:65000:1\x00"]),
        ("next_hop", "10.0.0.1\nshutdown"),
    ],
)
def test_control_characters_that_slip_past_validation_are_refused(field, value):
    # model_construct skips validation, standing in for any future path around it
    unchecked = Vip.model_construct(**{**vip().model_dump(), field: value})
    with pytest.raises(ValueError):
        announce_line(unchecked, EBGP, "5.0")


@pytest.mark.parametrize(
    "value",
    [
        "target:1.2:3",
        "target:65000:4294967296",
        "target:4200000000:65536",
        "target:192.0.2.1:65536",
        "color:1:2",
        "target:x:1",
    ],
)
def test_extended_communities_that_do_not_fit_are_refused(value):
    unchecked = Vip.model_construct(**{**vip().model_dump(), "extended_communities": [value]})
    with pytest.raises(ValueError, match="extended community"):
        announce_line(unchecked, EBGP, "5.0")


def test_carriers_are_the_neighbors_of_the_vip_family_unless_the_next_hop_is_explicit():
    assert [n.address for n in carriers(vip(), EBGP)] == ["10.0.1.1"]
    assert [n.address for n in carriers(vip(address="2001:db8::1"), EBGP)] == ["fd00:1::1"]
    assert [n.address for n in carriers(vip(next_hop="10.9.9.9"), EBGP)] == [
        "10.0.1.1",
        "fd00:1::1",
    ]


# ---------------------------------------------------------------- RouteWriter
def node_config(**overrides) -> NodeConfig:
    data = {
        "node": "lb1",
        "bgp": EBGP.model_dump(),
        "checks": {"c": {"type": "tcp", "port": 443}},
        "vips": [
            {"address": "192.0.2.10/32", "checks": ["c"], "path_id": 1},
            {"address": "2001:db8::10/128", "checks": ["c"]},
        ],
        **overrides,
    }
    return NodeConfig.model_validate(data)


@pytest.mark.parametrize(
    "prefix", ["192.0.2.10/32", "192.0.2.10", "2001:db8::10/128", "2001:DB8:0:0::10"]
)
def test_route_writer_renders_declared_vips_in_any_spelling(prefix):
    writer = RouteWriter(node_config())
    assert writer.announce(prefix).startswith("announce route ")
    assert writer.withdraw(prefix).startswith("withdraw route ")


@pytest.mark.parametrize(
    "prefix",
    [
        "192.0.2.11/32",
        "192.0.2.0/24",
        "0.0.0.0/0",
        "2001:db8::11",
        "lb1",
        "",
        "192.0.2.10/33",
        "192.0.2.10/32 next-hop 1.1.1.1",
    ],
)
def test_route_writer_refuses_undeclared_prefixes(prefix):
    writer = RouteWriter(node_config())
    with pytest.raises(UndeclaredPrefix):
        writer.announce(prefix)
    with pytest.raises(UndeclaredPrefix):
        writer.withdraw(prefix)


def test_route_writer_refuses_control_characters_in_the_prefix():
    with pytest.raises(ValueError):
        RouteWriter(node_config()).announce("192.0.2.10/32\nannounce route 0.0.0.0/0 next-hop self")


def test_route_writer_uses_the_configured_dialect_and_attributes():
    writer = RouteWriter(node_config(exabgp={"dialect": "4.2"}))
    assert writer.prefixes == ["192.0.2.10/32", "2001:db8::10/128"]
    assert writer.announce("192.0.2.10/32", graceful_shutdown=True) == (
        "announce route 192.0.2.10/32 next-hop self community [ 65535:0 ] path-information 1"
    )
    assert writer.withdraw("192.0.2.10/32") == "withdraw route 192.0.2.10/32 path-information 1"


def test_route_writer_fails_at_start_when_a_vip_has_no_neighbor_of_its_family():
    config = node_config(bgp={**EBGP.model_dump(), "neighbors": EBGP.model_dump()["neighbors"][:1]})
    with pytest.raises(ValueError, match="2001:db8::10/128"):
        RouteWriter(config)


# ---------------------------------------------------------------- ExaBGP's command dispatch
def _exabgp_dispatch(command: str) -> str | None:
    """Which registered command ExaBGP 5.0.15 runs for a line.

    The rule is ExaBGP's, in reactor/api/__init__.py.
    """
    functions = pytest.importorskip("exabgp.reactor.api.command").Command.functions
    for registered in functions:
        if (
            registered == command
            or command.endswith(" " + registered)
            or registered + " " in command
        ):
            return registered
    return None


def test_the_dispatch_rule_really_is_a_substring_match():
    # the trap that made us render communities as numbers
    assert (
        _exabgp_dispatch(
            "announce route 192.0.2.10/32 next-hop self community [ graceful-shutdown ]"
        )
        == "shutdown"
    )


@pytest.mark.parametrize("fields", [fields for fields, _, _ in ANNOUNCE_CASES])
def test_every_rendered_line_dispatches_to_the_route_command(fields):
    v = vip(**fields)
    assert (
        _exabgp_dispatch(announce_line(v, EBGP, "5.0", graceful_shutdown=True)) == "announce route"
    )
    assert _exabgp_dispatch(withdraw_line(v, EBGP, "5.0")) == "withdraw route"


# ---------------------------------------------------------------- parsing what ExaBGP writes
J50 = (
    '{ "exabgp": "5.0.0", "time": 1795290541.36, "host" : "vm", '
    '"pid" : 14850, "ppid" : 14849, "counter": 2, '
    '"type": "state", "neighbor": { "address": { "local": "10.99.0.2", "peer": "10.99.0.1" }, '
    '"asn": { "local": 65001, "peer": 65000 }, "router-id": "10.99.0.2" , "state": "%s"%s } }'
)
J42 = (
    '{ "exabgp": "4.0.1", "time": 1795290578.36, "host" : "vm", '
    '"pid" : 16113, "ppid" : 16112, "counter": 1, '
    '"type": "state", "neighbor": { "address": { "local": "fd00:99::2", "peer": "fd00:99::1" }, '
    '"asn": { "local": 65001, "peer": 65000 } , "state": "%s"%s } }'
)

PARSE_CASES = [
    # acks: plain text from 4.2 and 5.0, JSON from later versions
    ("done", Ack(True)),
    ("done\n", Ack(True)),
    ("error", Ack(False)),
    ('{ "answer": "done", "message": "command completed" }', Ack(True)),
    ('{ "answer": "error", "message": "this command does not support json output" }', Ack(False)),
    # JSON encoder (captured from ExaBGP 5.0.15 and 4.2.25)
    (J50 % ("up", ""), PeerState("10.99.0.1", True)),
    (J50 % ("connected", ""), PeerState("10.99.0.1", False)),
    (J50 % ("down", ', "reason": "notification received (6,7)"'), PeerState("10.99.0.1", False)),
    (J42 % ("up", ""), PeerState("fd00:99::1", True)),
    (
        J42
        % ("down", ', "reason": "peer reset, message (notification received (6,7)) error(Cease)"'),
        PeerState("fd00:99::1", False),
    ),
    (
        '{ "exabgp": "5.0.0", "time": 1795290557.77, "host" : "vm", "pid" : 14850, "ppid" : 1, '
        '"type": "notification", "notification": "shutdown" }',
        Shutdown(),
    ),
    ('{ "answer": "shutdown", "message": "exbgp exited" }', Shutdown()),
    # text encoder
    ("neighbor 10.99.0.1 up", PeerState("10.99.0.1", True)),
    ("neighbor fd00:99:0::1 connected", PeerState("fd00:99::1", False)),
    ("neighbor 10.99.0.1 down - notification received (6,7)", PeerState("10.99.0.1", False)),
    (
        "neighbor fd00:99::1 down - peer reset, message [notification received (6,7)] error[Cease]",
        PeerState("fd00:99::1", False),
    ),
    ("shutdown 17129 1", Shutdown()),
    ("shutdown in progress", Shutdown()),
    ("shutdown", Shutdown()),
]


@pytest.mark.parametrize(("line", "event"), PARSE_CASES)
def test_parse_line_understands_both_encoders(line, event):
    assert parse_line(line) == event


@pytest.mark.parametrize(
    "line",
    [
        "",
        "\n",
        "   ",
        "Done",
        "done done",
        "neighbor",
        "neighbor 10.0.0.1",
        "neighbor not-an-ip up",
        "neighbor 10.0.0.1 update start",
        "{",
        "{}",
        "[]",
        '"done"',
        "null",
        "{ not json }",
        '{"type": "state"}',
        '{"type": "state", "neighbor": []}',
        '{"type": "state", "neighbor": {"address": "x"}}',
        '{"type": "state", "neighbor": {"address": {"peer": "10.0.0.1"}, "state": 1}}',
        '{"type": "update", "neighbor": {"address": {"peer": "10.0.0.1"}}}',
        '{"answer": "maybe"}',
        "[" * 100000,
        '{"a": ' * 50000,
        "\x00\x01\x02",
        "done\x00",
    ],
)
def test_junk_is_unknown_never_an_exception(line):
    assert isinstance(parse_line(line), Unknown)


def test_random_input_never_raises():
    rng = random.Random(20261121)
    alphabet = 'done error shutdown neighbor up down connected {}[]":,0123456789.abcdef\n\x00\xff'
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        assert isinstance(parse_line(text), (Ack, PeerState, Shutdown, Unknown))
