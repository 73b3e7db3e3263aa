"""The kernel's answer to "which listener would take a connection to host:port" (pure).

A `listening` check sends sock_diag (NETLINK_SOCK_DIAG) one SOCK_DIAG_BY_FAMILY request for
one socket, not a dump: the socket id holds the check's host and port as the local end and
0.0.0.0:0 (or [::]:0) as the peer, and the kernel answers with the socket its own lookup
finds for that 4-tuple (inet_diag_find_one_icsk: inet_lookup, as for an arriving SYN). With
no peer nothing established matches, so that is the listener a connect would reach: one
bound to the host before the wildcard, an IPv6 wildcard that also takes IPv4, SO_REUSEPORT
groups as the kernel picks among them. Nothing found is NLMSG_ERROR with ENOENT.

For a listener the kernel reports its accept queue: `idiag_rqueue` the connections
handshaken and not yet accepted, `idiag_wqueue` the backlog (net/ipv4/tcp_diag.c); past the
backlog it drops new SYNs (sk_acceptq_is_full), which a connect would have met as a timeout.
The I/O is in checks/listening.py.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from dataclasses import dataclass

from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.agent.listener_events import AF_INET, AF_INET6, SOCK_DIAG_BY_FAMILY

NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
IPPROTO_TCP = 6
TCP_LISTEN = 10
NO_COOKIE = b"\xff" * 8  # INET_DIAG_NOCOOKIE: any socket with this id, whatever its cookie

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states; inet_diag_sockid: sport, dport
# (big-endian), src[16], dst[16], if, cookie[8]
_REQUEST = struct.Struct("=BBBxI2s2s16s16sI8s")
# inet_diag_msg: family, state, timer, retrans; the socket id; expires, rqueue, wqueue, uid,
# inode
_MESSAGE = struct.Struct("=BB2x2s2x16s16x4x8x4xII8x")
_ERRNO = struct.Struct("=i")


class DiagError(Exception):
    """The kernel refused the request (not "nothing there"), or answered what we cannot read."""

    def __init__(self, code: int, what: str) -> None:
        super().__init__(what)
        self.errno = code


@dataclass(frozen=True)
class Listener:
    family: int  # AF_INET, or AF_INET6 (also for an IPv6 wildcard that took an IPv4 host)
    address: bytes  # packed, 4 or 16 bytes; all zeros: the wildcard
    port: int
    queued: int  # handshaken, not yet accepted
    backlog: int  # the most the accept queue holds

    @property
    def full(self) -> bool:
        return self.queued > self.backlog


@dataclass(frozen=True)
class Wanted:
    """What a check looks for, and its request (the same bytes every time)."""

    family: int
    address: bytes
    port: int
    target: str  # "192.0.2.10:443", for details

    @classmethod
    def of(cls, host: str, port: int, target: str) -> Wanted:
        ip = ipaddress.ip_address(host)
        return cls(AF_INET6 if ip.version == 6 else AF_INET, ip.packed, port, target)

    def request(self, seq: int) -> bytes:
        """The netlink message that asks for the listener a connect here would reach."""
        body = _REQUEST.pack(
            self.family,
            IPPROTO_TCP,
            0,
            1 << TCP_LISTEN,
            self.port.to_bytes(2, "big"),
            b"\0\0",
            self.address,
            b"",
            0,
            NO_COOKIE,
        )
        header = _NLMSGHDR.pack(
            _NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, 0
        )
        return header + body


def decode_answer(data: bytes | bytearray | memoryview, seq: int) -> Listener | None | bool:
    """One read of the socket: the listener found, None when nothing listens (ENOENT), or
    False when the read held no answer to `seq` (an earlier request's: read again). Raises
    DiagError for any other error or a message too short to be one."""
    offset, end = 0, len(data)
    while offset + _NLMSGHDR.size <= end:
        length, kind, _, got_seq, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > end:
            raise DiagError(0, f"a netlink message of {length} bytes in a read of {end}")
        body = offset + _NLMSGHDR.size
        offset += (length + 3) & ~3
        if got_seq != seq:
            continue
        if kind == NLMSG_ERROR:
            if length < _NLMSGHDR.size + _ERRNO.size:
                raise DiagError(0, "a netlink error message without its code")
            code = -_ERRNO.unpack_from(data, body)[0]
            if code == errno.ENOENT:
                return None
            raise DiagError(code, f"the kernel refused the lookup: {errno.errorcode.get(code)}")
        if kind != SOCK_DIAG_BY_FAMILY or length - _NLMSGHDR.size < _MESSAGE.size:
            raise DiagError(0, f"an answer of type {kind} and {length} bytes")
        family, state, sport, src, queued, backlog = _MESSAGE.unpack_from(data, body)
        if state != TCP_LISTEN:
            return None  # not a listener (cannot take a connection)
        size = 4 if family == AF_INET else 16
        return Listener(family, bytes(src[:size]), int.from_bytes(sport, "big"), queued, backlog)
    return False


def assess(wanted: Wanted, listener: Listener | None, ok: Outcome) -> Outcome:
    """`ok` (the caller's, made once) when a listener would take a connection; none is hard
    (a connect would be refused); a full accept queue is soft (a connect would time out, and
    the queue may drain)."""
    if listener is None:
        return Outcome.hard(f"nothing listens on {wanted.target}")
    if listener.full:
        return Outcome.soft(
            f"accept queue full on {wanted.target}: {listener.queued} waiting, backlog "
            f"{listener.backlog}",
            queued=listener.queued,
            backlog=listener.backlog,
        )
    return ok
