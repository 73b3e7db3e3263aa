"""A minimal rtnetlink client: the three requests the agent's loopback VIPs need, stdlib only.

Look up an interface by name, dump its addresses (with their IFA_PROTO mark), add and delete
one address. pyroute2 does this and much more, and importing it costs the agent ~11 MiB of
RSS (its package imports every netlink family it knows) out of a 50 MiB budget; these few
messages are simple and fixed (rtnetlink(7), linux/if_addr.h), so they are written here.

`Rtnl(netns=NAME)` opens its socket inside /run/netns/NAME (the socket stays bound to the
namespace it was created in); that needs setns(2) through ctypes, imported only then.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading

RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x200, 0x400, 0x300
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS, IFA_PROTO = 1, 2, 8, 11
IFLA_IFNAME = 3
IFA_F_NODAD = 0x02
CLONE_NEWNET = 0x40000000

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTATTR = struct.Struct("=HH")  # len, type


class RtnlError(OSError):
    """The kernel refused a request; `errno` (also `.code`) says why."""

    @property
    def code(self) -> int:
        return self.errno or 0


def _attr(kind: int, data: bytes) -> bytes:
    body = _RTATTR.pack(_RTATTR.size + len(data), kind) + data
    return body + b"\0" * (-len(body) % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    offset = 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        out.setdefault(kind & 0x3FFF, data[offset + _RTATTR.size : offset + length])
        offset += (length + 3) & ~3
    return out


def _open_socket(netns: str | None) -> socket.socket:
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(own)
        raise
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:  # this thread only
            code = ctypes.get_errno()
            raise OSError(code, f"setns {netns}: {os.strerror(code)}")
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                # This thread is stuck in the wrong namespace: nothing must run in it again.
                os._exit(70)
    finally:
        os.close(own)
        os.close(target)


class Rtnl:
    """One NETLINK_ROUTE socket; use as a context manager. Not shared between threads."""

    def __init__(self, netns: str | None = None) -> None:
        self._sock = _open_socket(netns)
        self._sock.bind((0, 0))
        self._seq = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def _request(self, kind: int, flags: int, payload: bytes) -> list[tuple[int, bytes]]:
        """Send one request; (type, payload) of every answer until DONE or the ack."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            header = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), kind, flags, seq, 0)
            self._sock.sendall(header + payload)
            out: list[tuple[int, bytes]] = []
            while True:
                data = self._sock.recv(1 << 16)
                offset = 0
                while offset + _NLMSGHDR.size <= len(data):
                    length, mtype, mflags, mseq, _ = _NLMSGHDR.unpack_from(data, offset)
                    body = data[offset + _NLMSGHDR.size : offset + length]
                    offset += (length + 3) & ~3
                    if mseq != seq:
                        continue
                    if mtype == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", body)
                        if code:
                            raise RtnlError(-code, os.strerror(-code))
                        return out  # the ack
                    if mtype == NLMSG_DONE:
                        return out
                    out.append((mtype, body))
                    if not mflags & NLM_F_MULTI and not flags & NLM_F_ACK:
                        return out

    def link_index(self, name: str) -> int | None:
        payload = _IFINFOMSG.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name.encode() + b"\0")
        try:
            answers = self._request(RTM_GETLINK, NLM_F_REQUEST, payload)
        except RtnlError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise
        for mtype, body in answers:
            if mtype == RTM_NEWLINK:
                return _IFINFOMSG.unpack_from(body)[2]
        return None

    def addresses(self, index: int) -> list[tuple[str, int, int | None]]:
        """(address, prefix length, IFA_PROTO or None) of every address on interface `index`."""
        payload = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        out = []
        for mtype, body in self._request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, payload):
            if mtype != RTM_NEWADDR:
                continue
            family, prefixlen, _, _, ifindex = _IFADDRMSG.unpack_from(body)
            if ifindex != index:
                continue
            attrs = _attrs(body[_IFADDRMSG.size :])
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is None:
                continue
            proto = attrs.get(IFA_PROTO)
            out.append((socket.inet_ntop(family, raw), prefixlen, proto[0] if proto else None))
        return out

    def add(self, index: int, address: str, prefixlen: int, *, proto: int, nodad: bool) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        raw = socket.inet_pton(family, address)
        payload = _IFADDRMSG.pack(family, prefixlen, IFA_F_NODAD if nodad else 0, 0, index)
        payload += (
            _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw) + _attr(IFA_PROTO, bytes([proto]))
        )
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        self._request(RTM_NEWADDR, flags, payload)

    def delete(self, index: int, address: str, prefixlen: int) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        raw = socket.inet_pton(family, address)
        payload = _IFADDRMSG.pack(family, prefixlen, 0, 0, index)
        payload += _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        self._request(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, payload)
