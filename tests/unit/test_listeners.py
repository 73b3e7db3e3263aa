"""The listener table's request, reply decoding and verdict (checks/listeners.py, pure)."""

from __future__ import annotations

import socket
import struct

import pytest

from anycast_ctl.agent.checks.listeners import (
    AF_INET,
    AF_INET6,
    INET_DIAG_SKV6ONLY,
    NLMSG_DONE,
    NLMSG_ERROR,
    TCP_LISTEN,
    DumpError,
    Listener,
    Wanted,
    assess,
    by_port,
    decode_reply,
    dump_request,
    reached,
)
from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.agent.health import Health
from anycast_ctl.agent.listener_events import SOCK_DIAG_BY_FAMILY

HEADER = struct.Struct("=IHHII")
OK = Outcome.ok("listening")


def message(kind: int, seq: int, body: bytes) -> bytes:
    length = HEADER.size + len(body)
    return HEADER.pack(length, kind, 2, seq, 0) + body + b"\0" * (-length % 4)


def listener_message(
    seq: int,
    family: int,
    address: str,
    port: int,
    queued: int = 0,
    backlog: int = 128,
    v6only: bool | None = None,
    state: int = TCP_LISTEN,
) -> bytes:
    packed = socket.inet_pton(family, address).ljust(16, b"\0")
    body = struct.pack("=BBBB", family, state, 0, 0) + port.to_bytes(2, "big") + b"\0\0"
    body += (
        packed
        + b"\0" * 16
        + struct.pack("=I8s", 0, b"")
        + struct.pack("=IIIII", 0, queued, backlog, 0, 1234)
    )
    attrs = b""
    if v6only is not None:
        attrs += struct.pack("=HHB3x", 5, INET_DIAG_SKV6ONLY, int(v6only))
    attrs += struct.pack("=HHI", 8, 21, 7)  # another attribute (a cgroup id) to step over
    return message(SOCK_DIAG_BY_FAMILY, seq, body + attrs)


def done(seq: int) -> bytes:
    return message(NLMSG_DONE, seq, struct.pack("=i", 0))


def test_the_request_asks_a_dump_of_tcp_listeners_of_one_family() -> None:
    request = dump_request(AF_INET6, 7)
    length, kind, flags, seq, _ = HEADER.unpack_from(request)
    family, protocol, ext, _, states = struct.unpack_from("=BBBBI", request, HEADER.size)
    assert (length, kind, seq) == (len(request), SOCK_DIAG_BY_FAMILY, 7)
    assert flags == 0x301  # NLM_F_REQUEST | NLM_F_DUMP
    assert (family, protocol, ext, states) == (AF_INET6, 6, 0, 1 << TCP_LISTEN)
    assert len(request) == HEADER.size + 56  # struct inet_diag_req_v2
    assert not any(request[HEADER.size + 8 :])  # the socket id: any socket


def test_a_reply_decodes_to_listeners_and_ends_at_done() -> None:
    data = (
        listener_message(3, AF_INET, "192.0.2.10", 443, queued=2, backlog=511)
        + listener_message(3, AF_INET6, "::", 8080, v6only=True)
        + done(3)
    )
    found: list[Listener] = []
    assert decode_reply(data, 3, found) is True
    assert found == [
        Listener(AF_INET, socket.inet_aton("192.0.2.10"), 443, 2, 511, False),
        Listener(AF_INET6, b"\0" * 16, 8080, 0, 128, True),
    ]


def test_a_reply_without_done_asks_for_more_and_keeps_what_it_read() -> None:
    found: list[Listener] = []
    assert decode_reply(listener_message(1, AF_INET, "127.0.0.1", 80), 1, found) is False
    assert decode_reply(done(1), 1, found) is True
    assert [listener.port for listener in found] == [80]


def test_messages_of_an_earlier_dump_and_other_states_are_skipped() -> None:
    data = (
        listener_message(1, AF_INET, "127.0.0.1", 80)
        + done(1)
        + listener_message(2, AF_INET, "127.0.0.1", 81, state=1)
        + listener_message(2, AF_INET, "127.0.0.1", 82)
        + done(2)
    )
    found: list[Listener] = []
    assert decode_reply(data, 2, found) is True
    assert [listener.port for listener in found] == [82]


def test_the_kernels_error_answer_is_a_dump_error_with_its_errno() -> None:
    data = message(NLMSG_ERROR, 5, struct.pack("=i", -13) + b"\0" * 16)
    with pytest.raises(DumpError) as raised:
        decode_reply(data, 5, [])
    assert raised.value.errno == 13


@pytest.mark.parametrize("cut", [4, 20, 60])
def test_a_truncated_message_is_a_dump_error_not_a_wrong_table(cut: int) -> None:
    whole = listener_message(1, AF_INET, "127.0.0.1", 80)
    short = HEADER.pack(HEADER.size + cut, SOCK_DIAG_BY_FAMILY, 2, 1, 0) + whole[16 : 16 + cut]
    data = whole[: len(whole) - 8] if cut == 4 else short
    with pytest.raises(DumpError):
        decode_reply(data, 1, [])


def table(*listeners: Listener) -> dict[int, list[Listener]]:
    return by_port(list(listeners))


def v4(address: str, port: int, queued: int = 0, backlog: int = 10) -> Listener:
    return Listener(AF_INET, socket.inet_aton(address), port, queued, backlog, False)


def v6(address: str, port: int, v6only: bool = False) -> Listener:
    return Listener(AF_INET6, socket.inet_pton(AF_INET6, address), port, 0, 10, v6only)


VIP = Wanted.of("192.0.2.10", 443, "192.0.2.10:443")


def test_a_listener_on_the_host_itself_is_reached_before_the_wildcard() -> None:
    exact, wildcard = v4("192.0.2.10", 443, queued=11), v4("0.0.0.0", 443)
    assert reached(VIP, table(wildcard, exact), None) == [exact]


def test_the_wildcard_takes_a_host_with_no_listener_of_its_own() -> None:
    wildcard = v4("0.0.0.0", 443)
    assert reached(VIP, table(v4("192.0.2.11", 443), wildcard, v4("0.0.0.0", 80)), None) == [
        wildcard
    ]


def test_an_ipv4_host_is_taken_by_a_dual_stack_ipv6_wildcard_only() -> None:
    dual, only = v6("::", 443), v6("::", 443, v6only=True)
    assert reached(VIP, table(), table(dual, only, v6("2001:db8::1", 443))) == [dual]
    assert reached(VIP, table(), table(only)) == []


def test_an_ipv6_host_never_looks_at_ipv4_listeners() -> None:
    wanted = Wanted.of("2001:db8::10", 443, "[2001:db8::10]:443")
    assert wanted.family == AF_INET6
    assert reached(wanted, table(v6("2001:db8::10", 443)), None) == [v6("2001:db8::10", 443)]
    assert reached(wanted, table(v6("2001:db8::11", 443)), table(v4("0.0.0.0", 443))) == []


def test_nothing_listening_is_hard_like_a_refused_connect() -> None:
    outcome = assess(VIP, [], OK)
    assert outcome.health is Health.HARD_FAIL and "192.0.2.10:443" in outcome.detail


def test_a_full_accept_queue_is_soft_like_a_connect_that_times_out() -> None:
    outcome = assess(VIP, [v4("192.0.2.10", 443, queued=3), v4("192.0.2.10", 443, 11, 10)], OK)
    assert outcome.health is Health.SOFT_FAIL
    assert outcome.extra == {"queued": 11, "backlog": 10}


def test_a_queue_at_its_backlog_still_takes_a_connection() -> None:
    # The kernel drops SYNs only past the backlog (sk_acceptq_is_full: queued > backlog).
    assert assess(VIP, [v4("192.0.2.10", 443, queued=10, backlog=10)], OK) is OK
