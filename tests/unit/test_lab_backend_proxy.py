"""The lab backend's PROXY protocol v2 parsing (pure), on headers as HAProxy 2.6 sends them."""

from __future__ import annotations

import socket
import struct

import pytest

from anycast_ctl.lab.programs.backend import (
    PROXY_V2_SIGNATURE,
    parse_proxy_v2,
    proxy_body_length,
)
from anycast_ctl.lab.programs.traffic_client import failure_reason


def header(command: int, family: int, body: bytes) -> tuple[bytes, bytes]:
    head = PROXY_V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body))
    return head, body


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def test_an_ipv4_proxy_header_gives_client_vip_and_unique_id():
    addresses = socket.inet_aton("198.18.1.7") + socket.inet_aton("192.0.2.10")
    body = addresses + struct.pack("!HH", 20001, 443) + tlv(0x05, b"lb1-3A9F-692E1B5C-1F")
    head, body = header(1, 0x11, body)
    assert proxy_body_length(head) == len(body)
    parsed = parse_proxy_v2(head, body)
    assert (parsed.command, parsed.client, parsed.destination, parsed.unique_id) == (
        "PROXY",
        "198.18.1.7:20001",
        "192.0.2.10:443",
        "lb1-3A9F-692E1B5C-1F",
    )


def test_an_ipv6_header_with_other_tlvs_before_the_id():
    addresses = socket.inet_pton(socket.AF_INET6, "2001:db8::7") + socket.inet_pton(
        socket.AF_INET6, "2001:db8:f::10"
    )
    body = addresses + struct.pack("!HH", 40000, 443) + tlv(0x04, b"") + tlv(0x05, b"id-6")
    parsed = parse_proxy_v2(*header(1, 0x21, body))
    assert (parsed.client, parsed.unique_id) == ("[2001:db8::7]:40000", "id-6")


def test_a_local_header_is_a_health_check_without_addresses():
    parsed = parse_proxy_v2(*header(0, 0x00, b""))
    assert (parsed.command, parsed.client, parsed.unique_id) == ("LOCAL", None, None)


@pytest.mark.parametrize(
    ("head", "body", "message"),
    [
        (b"\x16\x03\x01" + b"\x00" * 13, b"", "no PROXY protocol v2 header"),  # a ClientHello
        (PROXY_V2_SIGNATURE + b"\x11\x11\x00\x0c", b"", "version 1, expected 2"),
        (PROXY_V2_SIGNATURE + b"\x21\x11\x00\x04", b"\x00" * 4, "addresses are cut short"),
        (PROXY_V2_SIGNATURE + b"\x21\x31\x00\x00", b"", "is not TCP over IP"),
        (PROXY_V2_SIGNATURE + b"\x2f\x11\x00\x00", b"", "command 15 is unknown"),
        (PROXY_V2_SIGNATURE + b"\x21\x11\xff\xff", b"", "too long"),
    ],
)
def test_anything_else_is_refused(head, body, message):
    with pytest.raises(ValueError, match=message):
        parse_proxy_v2(head, body)


def test_a_cut_tlv_is_refused():
    addresses = socket.inet_aton("198.18.1.7") + socket.inet_aton("192.0.2.10")
    body = addresses + struct.pack("!HH", 1, 2) + b"\x05\x00\x09abc"
    with pytest.raises(ValueError, match="TLV value is cut short"):
        parse_proxy_v2(*header(1, 0x11, body))


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), "closed"),
        (TimeoutError(), "timeout"),
        (ConnectionRefusedError(111, "refused"), "refused"),
    ],
)
def test_failure_reasons(exc, reason):
    assert failure_reason(exc) == reason
