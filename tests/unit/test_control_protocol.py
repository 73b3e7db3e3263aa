"""Control-socket protocol, pure: request parsing, the allow-list, refusal messages."""

import json

import pytest

from anycast_ctl.agent.control_protocol import (
    MAX_REQUEST_BYTES,
    ControlRequest,
    Op,
    PeerCred,
    error_text,
    is_allowed,
    parse_request,
    peek_op,
    refusal,
)
from anycast_ctl.errors import UserError

KNOWN = {"192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"}


def req(**fields) -> bytes:
    return json.dumps(fields).encode()


GOOD = [
    (
        "drain whole node",
        req(op="drain", reason="kernel upgrade"),
        ControlRequest(Op.DRAIN, (), "kernel upgrade"),
    ),
    (
        "drain with empty vip list",
        req(op="drain", vips=[], reason="x"),
        ControlRequest(Op.DRAIN, (), "x"),
    ),
    (
        "drain two vips",
        req(op="drain", vips=["192.0.2.10/32", "2001:db8::10/128"], reason="r"),
        ControlRequest(Op.DRAIN, ("192.0.2.10/32", "2001:db8::10/128"), "r"),
    ),
    (
        "bare address is normalized",
        req(op="drain", vips=["192.0.2.10", "2001:DB8::10"], reason="r"),
        ControlRequest(Op.DRAIN, ("192.0.2.10/32", "2001:db8::10/128"), "r"),
    ),
    (
        "duplicates collapse",
        req(op="undrain", vips=["192.0.2.10", "192.0.2.10/32"]),
        ControlRequest(Op.UNDRAIN, ("192.0.2.10/32",), ""),
    ),
    ("undrain needs no reason", req(op="undrain"), ControlRequest(Op.UNDRAIN, (), "")),
    ("status", req(op="status"), ControlRequest(Op.STATUS, (), "")),
    (
        "reason is trimmed",
        req(op="drain", reason="  upgrade  "),
        ControlRequest(Op.DRAIN, (), "upgrade"),
    ),
    (
        "status counting the connections left",
        req(op="status", connections=True),
        ControlRequest(Op.STATUS, (), "", connections=True),
    ),
    ("connections false", req(op="status", connections=False), ControlRequest(Op.STATUS)),
    ("trailing newline is fine", req(op="status") + b"\n", ControlRequest(Op.STATUS, (), "")),
]


@pytest.mark.parametrize("name,raw,expected", GOOD, ids=[g[0] for g in GOOD])
def test_good_requests(name, raw, expected):
    assert parse_request(raw, KNOWN) == expected


BAD = [
    # (name, raw, field path named, words in the message)
    ("not json", b"drain please", "", "not JSON"),
    ("not utf-8", b"\xff\xfe", "", "not UTF-8"),
    ("not an object", b"[1, 2]", "", "JSON object"),
    ("op missing", req(reason="x"), "op", "required"),
    ("unknown op", req(op="explode"), "op", "must be one of drain, undrain, status"),
    ("op wrong type", req(op=3), "op", "must be one of"),
    ("vips not a list", req(op="drain", vips="192.0.2.10", reason="r"), "vips", "must be a list"),
    ("vip not a string", req(op="drain", vips=[10], reason="r"), "vips[0]", "must be a string"),
    (
        "vip not an address",
        req(op="drain", vips=["192.0.2.10/32", "lb1"], reason="r"),
        "vips[1]",
        "not an IP address",
    ),
    (
        "vip not a host route",
        req(op="drain", vips=["192.0.2.0/24"], reason="r"),
        "vips[0]",
        "host route",
    ),
    (
        "vip not configured",
        req(op="drain", vips=["198.51.100.1"], reason="r"),
        "vips[0]",
        "not a VIP of this node",
    ),
    ("drain without reason", req(op="drain"), "reason", "required for drain"),
    ("drain with blank reason", req(op="drain", reason="   "), "reason", "required for drain"),
    ("reason wrong type", req(op="drain", reason=["x"]), "reason", "must be a string"),
    ("reason with newline", req(op="drain", reason="a\nb"), "reason", "control characters"),
    ("reason too long", req(op="drain", reason="x" * 501), "reason", "too long"),
    ("unknown field", req(op="status", force=True), "force", "unknown field"),
    ("connections not a boolean", req(op="status", connections=1), "connections", "true or false"),
    (
        "oversized",
        b'{"op": "drain", "reason": "' + b"x" * MAX_REQUEST_BYTES + b'"}',
        "",
        "too large",
    ),
]


@pytest.mark.parametrize("name,raw,where,words", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_name_the_field(name, raw, where, words):
    with pytest.raises(UserError) as caught:
        parse_request(raw, KNOWN)
    problems = caught.value.problems
    assert any(p.where == where and words in p.what for p in problems), problems


def test_every_problem_is_reported():
    with pytest.raises(UserError) as caught:
        parse_request(req(op="drain", vips=["nope", "198.51.100.1"], extra=1), KNOWN)
    assert {p.where for p in caught.value.problems} == {"extra", "vips[0]", "vips[1]", "reason"}
    assert error_text(caught.value).startswith("extra: unknown field; vips[0]: ")


def test_unknown_vip_message_lists_the_known_ones():
    with pytest.raises(UserError) as caught:
        parse_request(req(op="undrain", vips=["198.51.100.1"]), {"192.0.2.10/32"})
    assert "known: 192.0.2.10/32" in caught.value.problems[0].what


def test_describe_for_the_audit_log():
    assert ControlRequest(Op.DRAIN, ("192.0.2.10/32",), "upgrade").describe() == (
        "op=drain vips=192.0.2.10/32 reason='upgrade'"
    )
    assert ControlRequest(Op.STATUS).describe() == "op=status vips=whole-node"


def peer(uid=1000, user="alice", gids=(1000,), groups=("alice",)) -> PeerCred:
    return PeerCred(
        pid=42, uid=uid, gid=gids[0], user=user, gids=frozenset(gids), groups=frozenset(groups)
    )


ALLOW = [
    # (name, peer, allow_uids, allow_groups, allowed)
    ("uid listed", peer(), [0, 1000], [], True),
    ("uid not listed, no groups", peer(), [0], [], False),
    ("group by name", peer(gids=(1000, 990), groups=("alice", "lbops")), [0], ["lbops"], True),
    ("group by gid", peer(gids=(1000, 990), groups=("alice", "lbops")), [0], [990], True),
    (
        "other groups only",
        peer(gids=(1000, 990), groups=("alice", "lbops")),
        [0],
        ["wheel", 27],
        False,
    ),
    ("root by uid", peer(uid=0, user="root", gids=(0,), groups=("root",)), [0], [], True),
    ("a gid number is not a name", peer(gids=(1000,), groups=("alice",)), [], ["1000"], False),
]


@pytest.mark.parametrize("name,who,uids,groups,allowed", ALLOW, ids=[a[0] for a in ALLOW])
def test_allow_list(name, who, uids, groups, allowed):
    assert is_allowed(who, uids, groups) is allowed


def test_refusal_message_says_who_and_how_to_fix():
    assert refusal(peer(), "drain") == (
        "uid 1000 (alice) is not allowed to drain: add it to control.allow_uids or a group in"
        " control.allow_groups"
    )
    assert "uid 4242 (no such user) is not allowed to use the control socket" in refusal(
        PeerCred(1, 4242, 4242, "4242", frozenset({4242}), frozenset(), user_known=False), None
    )


def test_peek_op_only_returns_known_ops():
    assert peek_op(req(op="undrain")) == "undrain"
    assert peek_op(req(op="rm -rf")) is None
    assert peek_op(b"garbage") is None


def test_without_known_vips_any_host_prefix_passes():
    assert parse_request(req(op="undrain", vips=["198.51.100.1"]), None).vips == (
        "198.51.100.1/32",
    )
