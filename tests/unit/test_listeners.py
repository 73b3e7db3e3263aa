"""The listener lookup's request, the kernel's answer decoded, the verdict (checks/listeners.py)."""

from __future__ import annotations

import socket
import struct

import pytest

from anycast_ctl.agent.checks.listeners import (
    AF_INET,
    AF_INET6,
    NLMSG_ERROR,
    TCP_LISTEN,
    DiagError,
    Listener,
    Wanted,
    assess,
    decode_answer,
)
from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.agent.health import Health
from anycast_ctl.agent.listener_events import SOCK_DIAG_BY_FAMILY

HEADER = struct.Struct("=IHHII")
OK = Outcome.ok("listening")
VIP = Wanted.of("192.0.2.10", 443, "192.0.2.10:443")


def message(kind: int, seq: int, body: bytes) -> bytes:
    length = HEADER.size + len(body)
    return HEADER.pack(length, kind, 0, seq, 0) + body + b"\0" * (-length % 4)


def answer(
    seq: int,
    family: int,
    address: str,
    port: int,
    queued: int = 0,
    backlog: int = 128,
    state: int = TCP_LISTEN,
) -> bytes:
    packed = socket.inet_pton(family, address).ljust(16, b"\0")
    body = struct.pack("=BBBB", family, state, 0, 0) + port.to_bytes(2, "big") + b"\0\0"
    body += packed + b"\0" * 16 + struct.pack("=I8s", 0, b"")
    body += struct.pack("=IIIII", 0, queued, backlog, 0, 1234)
    body += struct.pack("=HHI", 8, 21, 7)  # an attribute (a cgroup id) after the message
    return message(SOCK_DIAG_BY_FAMILY, seq, body)


def error(seq: int, code: int) -> bytes:
    return message(NLMSG_ERROR, seq, struct.pack("=i", -code) + b"\0" * 16)


def test_the_request_names_the_host_and_port_as_the_local_end_of_a_peerless_socket() -> None:
    request = VIP.request(7)
    length, kind, flags, seq, _ = HEADER.unpack_from(request)
    assert (length, kind, flags, seq) == (len(request), SOCK_DIAG_BY_FAMILY, 1, 7)  # no DUMP
    assert len(request) == HEADER.size + 56  # struct inet_diag_req_v2
    family, protocol, _, _, states = struct.unpack_from("=BBBBI", request, HEADER.size)
    assert (family, protocol, states) == (AF_INET, 6, 1 << TCP_LISTEN)
    sport, dport, src, dst, ifindex, cookie = struct.unpack_from(
        "=2s2s16s16sI8s", request, HEADER.size + 8
    )
    assert int.from_bytes(sport, "big") == 443 and dport == b"\0\0"
    assert src == socket.inet_aton("192.0.2.10") + b"\0" * 12 and not any(dst)
    assert ifindex == 0 and cookie == b"\xff" * 8  # any device, no cookie to match


def test_an_ipv6_host_asks_in_its_own_family() -> None:
    wanted = Wanted.of("2001:db8::10", 8443, "[2001:db8::10]:8443")
    request = wanted.request(1)
    assert request[HEADER.size] == AF_INET6
    assert request[HEADER.size + 12 : HEADER.size + 28] == socket.inet_pton(
        AF_INET6, "2001:db8::10"
    )


def test_the_answer_is_the_listener_with_its_accept_queue() -> None:
    found = decode_answer(answer(3, AF_INET, "192.0.2.10", 443, queued=2, backlog=511), 3)
    assert found == Listener(AF_INET, socket.inet_aton("192.0.2.10"), 443, 2, 511)


def test_a_dual_stack_ipv6_wildcard_may_answer_an_ipv4_lookup() -> None:
    found = decode_answer(answer(3, AF_INET6, "::", 443), 3)
    assert isinstance(found, Listener) and found.family == AF_INET6 and not any(found.address)


def test_enoent_is_nothing_listening_and_other_errors_are_errors() -> None:
    assert decode_answer(error(4, 2), 4) is None
    with pytest.raises(DiagError) as raised:
        decode_answer(error(4, 13), 4)
    assert raised.value.errno == 13


def test_a_socket_that_is_not_listening_is_nothing_listening() -> None:
    assert decode_answer(answer(5, AF_INET, "192.0.2.10", 443, state=1), 5) is None


def test_an_answer_to_an_earlier_request_is_skipped() -> None:
    assert decode_answer(answer(1, AF_INET, "192.0.2.10", 443), 2) is False
    both = error(1, 2) + answer(2, AF_INET, "192.0.2.10", 443)
    assert isinstance(decode_answer(both, 2), Listener)


@pytest.mark.parametrize("cut", ["header says more", "message too short", "no error code"])
def test_a_truncated_answer_is_an_error_not_a_verdict(cut: str) -> None:
    whole = answer(1, AF_INET, "192.0.2.10", 443)
    data = {
        "header says more": whole[:-8],
        "message too short": HEADER.pack(HEADER.size + 40, SOCK_DIAG_BY_FAMILY, 0, 1, 0)
        + whole[16:56],
        "no error code": HEADER.pack(HEADER.size + 2, NLMSG_ERROR, 0, 1, 0) + b"\0\0\0\0",
    }[cut]
    with pytest.raises(DiagError):
        decode_answer(data, 1)


def listener(queued: int, backlog: int) -> Listener:
    return Listener(AF_INET, socket.inet_aton("192.0.2.10"), 443, queued, backlog)


def test_nothing_listening_is_hard_like_a_refused_connect() -> None:
    outcome = assess(VIP, None, OK)
    assert outcome.health is Health.HARD_FAIL and "192.0.2.10:443" in outcome.detail


def test_a_full_accept_queue_is_soft_like_a_connect_that_times_out() -> None:
    outcome = assess(VIP, listener(11, 10), OK)
    assert outcome.health is Health.SOFT_FAIL
    assert outcome.extra == {"queued": 11, "backlog": 10}


def test_a_queue_at_its_backlog_still_takes_a_connection() -> None:
    # The kernel drops SYNs only past the backlog (sk_acceptq_is_full: queued > backlog).
    assert assess(VIP, listener(10, 10), OK) is OK
