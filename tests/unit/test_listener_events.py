"""Listener closes from sock_diag destroy messages: decoding, the kernel filter, matching checks.

The messages are built as Linux 6.18 sends them (seen in a namespace: every freed TCP socket
is in state CLOSE; a listener has no peer; SO_LINGER 0 clears the peer's port, not its address).
The filter program runs here in a small interpreter of the four cBPF instructions it uses.
"""

from __future__ import annotations

import socket
import struct

import pytest

from anycast_ctl.agent import listener_events as le
from anycast_ctl.agent.listener_events import ClosedSocket, Endpoint
from anycast_ctl.config.node import ExecCheck, HaproxyCheck, HttpCheck, TcpCheck, TlsCheck

TCP_CLOSE = 7


def message(src: str, sport: int, dst: str = "", dport: int = 0, kind: int = 20) -> bytes:
    """One netlink message as the destroy groups carry it (the attributes left out)."""
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    size = 4 if family == socket.AF_INET else 16

    def raw(address: str) -> bytes:
        packed = socket.inet_pton(family, address) if address else b""
        return (packed + b"\0" * 16)[:16] if size == 4 else packed or b"\0" * 16

    body = struct.pack("=BBBB", family, TCP_CLOSE, 0, 0)
    body += struct.pack(">HH", sport, dport) + raw(src) + raw(dst)
    body += struct.pack("=I8s", 0, b"\1" * 8) + b"\0" * 20  # if, cookie; expires..inode
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def run_filter(program: bytes, packet: bytes) -> int:
    """What the kernel's sk_filter answers: 0 drops, anything else keeps."""
    insns = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code in (0x28, 0x20):  # ldh / ld [k], big-endian; out of bounds drops
            width = 2 if code == 0x28 else 4
            if k + width > len(packet):
                return 0
            acc = int.from_bytes(packet[k : k + width], "big")
            pc += 1
        elif code == 0x15:  # jeq #k
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


LISTENER = message("192.0.2.10", 443)
LISTENER_ANY6 = message("::", 443)
NORMAL_CLOSE = message("192.0.2.10", 443, "198.51.100.7", 50123)
LINGER0_CLOSE = message("192.0.2.10", 443, "198.51.100.7", 0)  # the peer's address stays
CLIENT_CLOSE = message("192.0.2.10", 50123, "192.0.2.20", 443)
OTHER_PORT = message("192.0.2.10", 22)


@pytest.mark.parametrize(
    ("packet", "kept"),
    [
        (LISTENER, True),
        (LISTENER_ANY6, True),
        (NORMAL_CLOSE, False),
        (LINGER0_CLOSE, False),
        (message("2001:db8::1", 443, "2001:db8::2", 0), False),
        (CLIENT_CLOSE, False),
        (OTHER_PORT, False),
        (LISTENER[:30], False),  # truncated: the loads run past it
    ],
)
def test_the_filter_keeps_only_peerless_sockets_on_the_watched_ports(packet, kept):
    count, program = le.filter_program([443, 8443])
    assert count * 8 == len(program)
    assert (run_filter(program, packet) != 0) is kept


def test_with_too_many_ports_the_filter_keeps_every_peerless_socket():
    _, program = le.filter_program(range(1000, 1000 + le.MAX_FILTER_PORTS + 1))
    assert run_filter(program, OTHER_PORT) != 0
    assert run_filter(program, NORMAL_CLOSE) == 0
    assert run_filter(program, LINGER0_CLOSE) == 0


def test_jumps_stay_within_eight_bits_at_the_most_ports():
    _, program = le.filter_program(range(1, le.MAX_FILTER_PORTS + 1))
    assert all(
        max(struct.unpack_from("=HBBI", program, i)[1:3]) <= 255 for i in range(0, len(program), 8)
    )
    assert run_filter(program, message("0.0.0.0", le.MAX_FILTER_PORTS)) != 0


def test_decode_reads_every_message_and_keeps_only_the_peerless():
    data = b"".join([LISTENER, NORMAL_CLOSE, LISTENER_ANY6, LINGER0_CLOSE])
    closed, count = le.decode(data)
    assert count == 4
    assert closed == [ClosedSocket("192.0.2.10", 443), ClosedSocket("::", 443)]


def test_decode_maps_ipv4_in_ipv6_and_skips_other_kinds():
    closed, count = le.decode(message("::ffff:192.0.2.10", 80) + message("1.2.3.4", 80, kind=2))
    assert (closed, count) == ([ClosedSocket("192.0.2.10", 80)], 2)


def test_decode_stops_at_a_broken_length():
    broken = struct.pack("=IHHII", 3, 20, 0, 0, 0)
    assert le.decode(LISTENER + broken + LISTENER) == ([ClosedSocket("192.0.2.10", 443)], 1)


def test_endpoints_of_checks_that_connect_somewhere():
    checks = {
        "tcp": TcpCheck(type="tcp", host="192.0.2.10", port=443),
        "also": TcpCheck(type="tcp", host="192.0.2.10", port=443),
        "tls": TlsCheck(type="tls", host="::1", server_name="web"),
        "http": HttpCheck(type="http", url="http://localhost/health"),
        "https": HttpCheck(type="http", url="https://[::ffff:127.0.0.1]:8443/"),
        "haproxy": HaproxyCheck(type="haproxy", socket="/run/h.sock", frontend="f", backend="b"),
        "exec": ExecCheck(type="exec", command=["true"]),
    }
    assert le.watched_endpoints(checks) == {
        Endpoint("192.0.2.10", 443): {"tcp", "also"},
        Endpoint("::1", 443): {"tls"},
        Endpoint(None, 80): {"http"},
        Endpoint("127.0.0.1", 8443): {"https"},
    }


@pytest.mark.parametrize(
    ("closed", "endpoint", "covered"),
    [
        (ClosedSocket("192.0.2.10", 443), Endpoint("192.0.2.10", 443), True),
        (ClosedSocket("192.0.2.10", 443), Endpoint("192.0.2.10", 80), False),
        (ClosedSocket("192.0.2.11", 443), Endpoint("192.0.2.10", 443), False),
        (ClosedSocket("0.0.0.0", 443), Endpoint("192.0.2.10", 443), True),
        (ClosedSocket("0.0.0.0", 443), Endpoint("::1", 443), False),
        (ClosedSocket("::", 443), Endpoint("192.0.2.10", 443), True),  # dual-stack wildcard
        (ClosedSocket("::", 443), Endpoint("::1", 443), True),
        (ClosedSocket("127.0.0.1", 80), Endpoint(None, 80), True),  # a name: any address
    ],
)
def test_a_closed_socket_covers_a_check_on_its_port_and_address_or_wildcard(
    closed, endpoint, covered
):
    assert le.covers(closed, endpoint) is covered


def test_checks_hit_joins_the_checks_of_every_endpoint_a_close_covers():
    endpoints = {
        Endpoint("192.0.2.10", 443): {"a"},
        Endpoint("192.0.2.11", 443): {"b"},
        Endpoint("192.0.2.10", 80): {"c"},
    }
    assert le.checks_hit([ClosedSocket("0.0.0.0", 443)], endpoints) == {"a", "b"}
    assert le.checks_hit([ClosedSocket("192.0.2.10", 80)], endpoints) == {"c"}
    assert le.checks_hit([], endpoints) == set()
