"""A listening socket closing, as the kernel broadcasts it: decode, filter, match to checks (pure).

The kernel sends a sock_diag message on the multicast groups SKNLGRP_INET_TCP_DESTROY and
SKNLGRP_INET6_TCP_DESTROY of NETLINK_SOCK_DIAG for every TCP socket it frees in the network
namespace: nlmsghdr, then struct inet_diag_msg (linux/inet_diag.h), in state TCP_CLOSE
whatever the socket was. The I/O is in agent/sockdiag.py; this module says which of those
messages matter and what they touch.

Which sockets are listeners: the destroy message does not say LISTEN, so we tell them by
their addresses (checked on Linux 6.18, tests/unit/test_listener_events.py lists the cases):
a listener has no peer (destination port 0 and destination address all zeros). A connection
closed normally keeps its peer's port; one closed with SO_LINGER 0 or reset loses its peer's
port (tcp_disconnect) but keeps its peer's address. So "no peer port and no peer address"
leaves listeners and sockets bound but never connected, and no connection whatever its close.
`filter_program` does that test (and the ports) in the kernel, so a busy LB node's
connections never wake the agent.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from anycast_ctl.config.node import Check, HttpCheck, ListeningCheck, TcpCheck, TlsCheck

SOCK_DIAG_BY_FAMILY = 20  # the nlmsg_type of every inet_diag message
SKNLGRP_INET_TCP_DESTROY = 1
SKNLGRP_INET6_TCP_DESTROY = 3

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_msg: family, state, timer, retrans; inet_diag_sockid: sport, dport (big-endian),
# src[16], dst[16], if, cookie[2]
_DIAG = struct.Struct("=BBBB2s2s16s16sI8s")
AF_INET, AF_INET6 = 2, 10  # linux/socket.h
# Offsets from the start of the netlink message, as a socket filter sees it.
SPORT_AT = _NLMSGHDR.size + 4
DPORT_AT = SPORT_AT + 2
DST_AT = _NLMSGHDR.size + 4 + 4 + 16
# cBPF jumps are 8 bits: past this many ports the kernel filter keeps every listener's close
# (still no connection's) and the ports are matched here.
MAX_FILTER_PORTS = 200

# cBPF opcodes (linux/filter.h, linux/bpf_common.h)
_LD_H_ABS = 0x28  # BPF_LD | BPF_H | BPF_ABS: A = big-endian u16 at k
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: A = big-endian u32 at k
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_INSN = struct.Struct("=HBBI")  # struct sock_filter: code, jt, jf, k
_ACCEPT, _DROP = 0xFFFFFFFF, 0


@dataclass(frozen=True)
class ClosedSocket:
    """A TCP socket without a peer that the kernel freed: a listener (or a bound socket)."""

    address: str  # the local address it was bound to: "0.0.0.0" or "::" for any
    port: int


@dataclass(frozen=True)
class Endpoint:
    """What an address-and-port check connects to; host None: a name, any address."""

    host: str | None
    port: int


def filter_program(ports: Iterable[int]) -> tuple[int, bytes]:
    """(instruction count, struct sock_filter array) for SO_ATTACH_FILTER on the netlink socket.

    Passes a message only when its socket had no peer (destination port 0, destination
    address all zeros) and, for up to MAX_FILTER_PORTS ports, its local port is one of
    `ports`; everything else is dropped before it is queued to us.
    """
    wanted = sorted(set(ports))
    if len(wanted) > MAX_FILTER_PORTS:
        wanted = []
    # (code, k, where to go if equal, where if not): None is the next instruction.
    program: list[tuple[int, int, str | None, str | None]] = []
    loads = [(_LD_H_ABS, DPORT_AT)] + [(_LD_W_ABS, DST_AT + 4 * i) for i in range(4)]
    for code, at in loads:
        program.append((code, at, None, None))
        program.append((_JEQ_K, 0, None, "drop"))  # not zero: the socket had a peer
    if wanted:
        program.append((_LD_H_ABS, SPORT_AT, None, None))
        program += [(_JEQ_K, port, "accept", None) for port in wanted]
    else:
        program[-1] = (_JEQ_K, 0, "accept", "drop")
    labels = {"drop": len(program), "accept": len(program) + 1}

    def offset(index: int, label: str | None) -> int:
        return 0 if label is None else labels[label] - index - 1

    out = [
        _INSN.pack(code, offset(i, jt), offset(i, jf), k)
        for i, (code, k, jt, jf) in enumerate(program)
    ]
    out += [_INSN.pack(_RET_K, 0, 0, _DROP), _INSN.pack(_RET_K, 0, 0, _ACCEPT)]
    return len(out), b"".join(out)


def decode(data: bytes) -> tuple[list[ClosedSocket], int]:
    """(peerless sockets closed, netlink messages read) from one read of the socket.

    Sockets with a peer are left out here too: with no filter attached (a measurement of
    what the filter saves) the kernel sends every close, and only the peerless ones count.
    """
    closed: list[ClosedSocket] = []
    messages = 0
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        body = data[offset + _NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3
        messages += 1
        if kind != SOCK_DIAG_BY_FAMILY or len(body) < _DIAG.size:
            continue
        family, _, _, _, sport, dport, src, dst, _, _ = _DIAG.unpack_from(body)
        if dport != b"\0\0" or any(dst):
            continue
        if family == AF_INET:
            address = str(ipaddress.IPv4Address(src[:4]))
        elif family == AF_INET6:
            address = _unmapped(str(ipaddress.IPv6Address(src)))
        else:
            continue
        closed.append(ClosedSocket(address, int.from_bytes(sport, "big")))
    return closed, messages


def _unmapped(address: str) -> str:
    """An IPv4-mapped IPv6 address ("::ffff:192.0.2.1") as the IPv4 address it is."""
    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped if mapped is not None else ip)


def endpoint_of(spec: Check) -> Endpoint | None:
    """The address and port a check connects to (or, `listening`, looks up); None for
    checks that name no port."""
    if isinstance(spec, TcpCheck | ListeningCheck | TlsCheck):
        return Endpoint(_literal(spec.host), spec.port)
    if isinstance(spec, HttpCheck):
        url = urlsplit(spec.url)
        port = url.port or (443 if url.scheme == "https" else 80)
        return Endpoint(_literal(url.hostname or ""), port)
    return None


def _literal(host: str) -> str | None:
    try:
        return _unmapped(host)
    except ValueError:
        return None  # a name: whatever it resolves to


def watched_endpoints(checks: Mapping[str, Check]) -> dict[Endpoint, set[str]]:
    """Each endpoint some check connects to, with the names of the checks that do."""
    out: dict[Endpoint, set[str]] = {}
    for name, spec in checks.items():
        endpoint = endpoint_of(spec)
        if endpoint is not None:
            out.setdefault(endpoint, set()).add(name)
    return out


def covers(closed: ClosedSocket, endpoint: Endpoint) -> bool:
    """Could this socket have been what the check connected to? Over-inclusive on purpose:
    a wrong yes costs one early check, a wrong no only the wait for the next tick."""
    if closed.port != endpoint.port:
        return False
    if endpoint.host is None or closed.address == endpoint.host or closed.address == "::":
        return True  # "::" also takes IPv4 unless IPV6_V6ONLY, which the message does not say
    return closed.address == "0.0.0.0" and ":" not in endpoint.host


def checks_hit(closed: Iterable[ClosedSocket], endpoints: Mapping[Endpoint, set[str]]) -> set[str]:
    """The check names whose endpoint one of the closed sockets may have served."""
    hit: set[str] = set()
    for sock in closed:
        for endpoint, names in endpoints.items():
            if covers(sock, endpoint):
                hit |= names
    return hit
