"""The kernel's table of listening TCP sockets: the request, the reply, the verdict (pure).

A `listening` check asks sock_diag (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY) for the TCP
sockets in state LISTEN of one address family and judges one address and port from the
answer. For a listener the kernel reports its accept queue: `idiag_rqueue` is the
connections handshaken and not yet accepted, `idiag_wqueue` the backlog (linux
net/ipv4/tcp_diag.c); past the backlog the kernel drops new SYNs (sk_acceptq_is_full), which
is what a connect would have run into as a timeout. The I/O is in checks/listening.py.

Which listener a connect to host:port would reach, as the kernel's lookup scores them: one
bound to the host itself, else one bound to the family's wildcard, else (an IPv4 host) an
IPv6 wildcard that also takes IPv4 (not IPV6_V6ONLY). Several sockets on one address and port
(SO_REUSEPORT) share the new connections, so one of them full is a share of them dropped.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.agent.listener_events import AF_INET, AF_INET6, SOCK_DIAG_BY_FAMILY

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IPPROTO_TCP = 6
TCP_LISTEN = 10
INET_DIAG_SKV6ONLY = 11  # an attribute the kernel adds to every IPv6 socket's message

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states; inet_diag_sockid (all zero: any)
_REQUEST = struct.Struct("=BBBxI48x")
# inet_diag_msg: family, state, timer, retrans; sport (big-endian), dport, src[16], dst[16],
# if, cookie[2]; expires, rqueue, wqueue, uid, inode
_MESSAGE = struct.Struct("=BBxx2s2x16s16x4x8xIIIII")
_RTATTR = struct.Struct("=HH")  # len, type
_ERRNO = struct.Struct("=i")


class DumpError(Exception):
    """The kernel answered the dump with an error, or with something we cannot read."""

    def __init__(self, errno: int, what: str) -> None:
        super().__init__(what)
        self.errno = errno


@dataclass(frozen=True)
class Listener:
    family: int  # AF_INET or AF_INET6
    address: bytes  # packed, 4 or 16 bytes; all zeros: the wildcard
    port: int
    queued: int  # handshaken, not yet accepted
    backlog: int  # the most the accept queue holds
    v6only: bool  # an IPv6 socket that takes no IPv4

    @property
    def full(self) -> bool:
        return self.queued > self.backlog


def dump_request(family: int, seq: int) -> bytes:
    """One netlink message asking for every TCP listener of `family` in this namespace."""
    body = _REQUEST.pack(family, IPPROTO_TCP, 0, 1 << TCP_LISTEN)
    return (
        _NLMSGHDR.pack(
            _NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
        )
        + body
    )


def decode_reply(data: bytes | bytearray | memoryview, seq: int, into: list[Listener]) -> bool:
    """Append the listeners in one read of the dump's answer to `into`; True once the dump is
    over (NLMSG_DONE). Messages of another sequence number (an earlier dump's) are skipped.
    Raises DumpError for the kernel's error answer or a message too short to be one."""
    offset, end = 0, len(data)
    while offset + _NLMSGHDR.size <= end:
        length, kind, _, got_seq, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > end:
            raise DumpError(0, f"a netlink message of {length} bytes in a read of {end}")
        body = offset + _NLMSGHDR.size
        offset += (length + 3) & ~3
        if got_seq != seq:
            continue
        if kind == NLMSG_DONE:
            return True
        if kind == NLMSG_ERROR:
            (error,) = _ERRNO.unpack_from(data, body)
            raise DumpError(-error, "the kernel refused the listener dump")
        if kind != SOCK_DIAG_BY_FAMILY:
            continue
        if length - _NLMSGHDR.size < _MESSAGE.size:
            raise DumpError(0, f"an inet_diag message of {length} bytes")
        family, state, sport, src, _, queued, backlog, _, _ = _MESSAGE.unpack_from(data, body)
        if state != TCP_LISTEN:
            continue
        size = 4 if family == AF_INET else 16
        v6only = family == AF_INET6 and _v6only(data, body + _MESSAGE.size, body - 16 + length)
        into.append(
            Listener(
                family, bytes(src[:size]), int.from_bytes(sport, "big"), queued, backlog, v6only
            )
        )
    return False


def _v6only(data: bytes | bytearray | memoryview, start: int, end: int) -> bool:
    """The INET_DIAG_SKV6ONLY attribute among the message's attributes (absent: False)."""
    while start + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, start)
        if length < _RTATTR.size:
            return False
        if kind == INET_DIAG_SKV6ONLY and length > _RTATTR.size:
            return bool(data[start + _RTATTR.size])
        start += (length + 3) & ~3
    return False


@dataclass(frozen=True)
class Wanted:
    """What a check looks for: the packed host and its family, the port, for details."""

    family: int
    address: bytes
    port: int
    target: str  # "192.0.2.10:443", for details

    @classmethod
    def of(cls, host: str, port: int, target: str) -> Wanted:
        ip = ipaddress.ip_address(host)
        family = AF_INET6 if ip.version == 6 else AF_INET
        return cls(family, ip.packed, port, target)


ByPort = dict[int, list[Listener]]


def by_port(listeners: list[Listener]) -> ByPort:
    """The listeners of one dump by port: each check then looks at its own port only."""
    out: ByPort = {}
    for listener in listeners:
        out.setdefault(listener.port, []).append(listener)
    return out


def reached(wanted: Wanted, same_family: ByPort, ipv6: ByPort | None) -> list[Listener]:
    """The listeners a connect to the wanted address would reach (see the module's doc):
    `ipv6` is the IPv6 table for an IPv4 host, or None when it was not needed (or not read)."""
    on_port = same_family.get(wanted.port, [])
    exact = [listener for listener in on_port if listener.address == wanted.address]
    if exact:
        return exact
    wildcard = [listener for listener in on_port if not any(listener.address)]
    if wildcard or wanted.family != AF_INET or not ipv6:
        return wildcard
    return [
        listener
        for listener in ipv6.get(wanted.port, [])
        if not any(listener.address) and not listener.v6only
    ]


def assess(wanted: Wanted, listeners: list[Listener], ok: Outcome) -> Outcome:
    """`ok` (the caller's, made once) when some listener would take a connection and none of
    them has a full queue; no listener at all is hard (a connect would be refused); a full
    queue is soft (a connect would time out, and it may drain)."""
    if not listeners:
        return Outcome.hard(f"nothing listens on {wanted.target}")
    full = [listener for listener in listeners if listener.full]
    if full:
        worst = max(full, key=lambda listener: listener.queued)
        return Outcome.soft(
            f"accept queue full on {wanted.target}: {worst.queued} waiting, backlog "
            f"{worst.backlog}",
            queued=worst.queued,
            backlog=worst.backlog,
        )
    return ok
