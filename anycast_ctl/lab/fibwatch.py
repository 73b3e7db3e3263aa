"""When exactly did a router's kernel stop (or start) using a next hop for a prefix?

`FibWatcher(netns, prefix)` listens to the namespace's route notifications (rtnetlink groups
RTMGRP_IPV4_ROUTE / RTMGRP_IPV6_ROUTE) on a reader thread, and records the prefix's next-hop
set with a CLOCK_MONOTONIC timestamp taken the moment each notification is read. Polling
`ip route` would add up to a poll interval of error; an event stream is exact to the
scheduling delay of one thread.

How the kernel notifies (checked on this kernel, see tests/integration/test_lab_fibwatch.py):
- IPv4: every RTM_NEWROUTE carries the whole route (all next hops); RTM_DELROUTE removes it.
- IPv6: RTM_NEWROUTE (add, replace, append) carries the whole route with every sibling, but
  deleting one sibling sends an RTM_DELROUTE with only that next hop.
Several routes may share the prefix (different metrics): the kernel forwards by the lowest
metric, so that route's next hops are "the" set.

The sockets are created inside the namespace by a short-lived thread that setns()es itself
(network namespaces are per thread); a socket stays in the namespace it was created in, so
the rest of the process, and the reader thread, never leave the root namespace.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE
from pyroute2.netlink.rtnl.rtmsg import RTNH_F_DEAD, rtmsg

from anycast_ctl.lab.state import LabError

CLONE_NEWNET = 0x40000000
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
MAIN_TABLE = 254
_RCVBUF = 4 << 20  # a burst of FRR updates must not overflow the socket (ENOBUFS)


class Hop(NamedTuple):
    gateway: str | None
    oif: int
    flags: int  # RTNH_F_*: DEAD means the kernel no longer hashes flows to it
    weight: int  # rtnh_hops + 1, as `ip route` shows it

    @property
    def usable(self) -> bool:
        return not self.flags & RTNH_F_DEAD


@dataclass(frozen=True)
class FibSample:
    time: float  # time.monotonic() when the notification was read
    hops: frozenset[Hop]
    resync: bool = False  # taken from a dump after lost notifications, not from an event

    @property
    def gateways(self) -> frozenset[str]:
        """The gateways flows are hashed to now (dead next hops excluded)."""
        return frozenset(h.gateway for h in self.hops if h.usable and h.gateway)


# ---------------------------------------------------------------- pure part
RouteKey = tuple[int, int]  # (metric, tos): routes for one prefix in one table


@dataclass(frozen=True)
class RouteUpdate:
    kind: int  # RTM_NEWROUTE or RTM_DELROUTE
    key: RouteKey
    hops: frozenset[Hop]


def decode_route(msg, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> RouteUpdate | None:
    """A decoded rtmsg -> RouteUpdate if it concerns exactly `network` in the main table."""
    if msg["header"]["type"] not in (RTM_NEWROUTE, RTM_DELROUTE):
        return None
    if msg["family"] != (socket.AF_INET if network.version == 4 else socket.AF_INET6):
        return None
    table = msg.get_attr("RTA_TABLE") or msg["table"]  # RTA_TABLE holds tables > 255
    if table != MAIN_TABLE or msg["dst_len"] != network.prefixlen:
        return None
    dst = msg.get_attr("RTA_DST")  # absent for a default route
    if dst is not None and ipaddress.ip_address(dst) != network.network_address:
        return None
    multipath = msg.get_attr("RTA_MULTIPATH")
    if multipath:
        hops = frozenset(
            Hop(_gateway(nh), nh["oif"], nh["flags"], nh["hops"] + 1) for nh in multipath
        )
    else:
        hops = frozenset({Hop(_gateway(msg), msg.get_attr("RTA_OIF") or 0, msg["flags"] & 0xFF, 1)})
    key = (msg.get_attr("RTA_PRIORITY") or 0, msg["tos"])
    return RouteUpdate(msg["header"]["type"], key, hops)


def _gateway(msg) -> str | None:
    via = msg.get_attr("RTA_VIA")  # an IPv4 route through an IPv6 next hop (RFC 5549)
    if via:
        return via.get("addr") if isinstance(via, dict) else str(via)
    return msg.get_attr("RTA_GATEWAY")


class RouteTable:
    """The routes of one prefix, fed with RouteUpdates; `hops()` is what the kernel uses."""

    def __init__(self, version: int):
        self.version = version
        self.routes: dict[RouteKey, frozenset[Hop]] = {}

    def apply(self, update: RouteUpdate) -> None:
        if update.kind == RTM_NEWROUTE:
            self.routes[update.key] = update.hops
        elif self.version == 6:  # one sibling deleted: only that next hop is in the message
            left = self.routes.get(update.key, frozenset()) - update.hops
            if left:
                self.routes[update.key] = left
            else:
                self.routes.pop(update.key, None)
        else:
            self.routes.pop(update.key, None)

    def hops(self) -> frozenset[Hop]:
        if not self.routes:
            return frozenset()
        return self.routes[min(self.routes)]


def state_at(samples: list[FibSample], when: float) -> FibSample | None:
    """The sample in force at `when` (the last one taken at or before it)."""
    current = None
    for sample in samples:
        if sample.time > when:
            break
        current = sample
    return current


def first_time(samples: list[FibSample], since: float, predicate: Callable[[FibSample], bool]) -> float | None:
    """The earliest time >= since at which predicate holds: `since` itself if it already
    holds then, else the time of the first later sample where it holds; None if never."""
    at_start = state_at(samples, since)
    if at_start is not None and predicate(at_start):
        return since
    for sample in samples:
        if sample.time > since and predicate(sample):
            return sample.time
    return None


def without(gateways: Iterable[str]) -> Callable[[FibSample], bool]:
    """Predicate: none of `gateways` is in use (the node is out of this router's FIB)."""
    gone = frozenset(gateways)
    return lambda sample: not (sample.gateways & gone)


def with_any(gateways: Iterable[str]) -> Callable[[FibSample], bool]:
    """Predicate: at least one of `gateways` is in use (the node is back)."""
    wanted = frozenset(gateways)
    return lambda sample: bool(sample.gateways & wanted)


# ---------------------------------------------------------------- I/O part
def netlink_sockets_in(netns: str, groups: int) -> tuple[socket.socket, socket.socket]:
    """(event socket bound to `groups`, plain socket for dumps), both inside `netns`."""
    result: dict = {}

    def create() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        except FileNotFoundError:
            result["error"] = LabError(f"fibwatch: no network namespace {netns!r}")
            return
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                result["error"] = LabError(f"fibwatch: setns {netns}: {os.strerror(ctypes.get_errno())}")
                return
        finally:
            os.close(fd)
        events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        events.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        events.bind((0, groups))
        dumps = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        dumps.bind((0, 0))
        result["sockets"] = (events, dumps)

    # This thread ends inside the namespace; nothing else ever runs on it.
    thread = threading.Thread(target=create, name=f"fibwatch-setns-{netns}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["sockets"]


def split_messages(data: bytes) -> list:
    """A netlink datagram -> decoded rtmsgs (other types keep only their header)."""
    out, offset = [], 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("IH", data, offset)
        if length < 16:
            break
        msg = rtmsg(data[offset : offset + length])
        if kind in (RTM_NEWROUTE, RTM_DELROUTE):
            msg.decode()
        else:
            msg["header"] = {"type": kind}
        out.append(msg)
        offset += (length + 3) & ~3
    return out


class FibWatcher:
    """Next hops of `prefix` in namespace `netns`, over time.

        with FibWatcher("lab-r1", "192.0.2.10/32") as fib:
            t0 = time.monotonic(); kill_haproxy()
            elapsed = fib.wait_for(without({"100.64.0.3"}), since=t0, timeout=2) - t0
    """

    def __init__(self, netns: str, prefix: str, clock: Callable[[], float] = time.monotonic):
        self.netns = netns
        self.network = ipaddress.ip_network(prefix)
        self.clock = clock
        self._table = RouteTable(self.network.version)
        self._samples: list[FibSample] = []
        self._changed = threading.Condition()
        self._events: socket.socket | None = None
        self._dumps: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._reader: threading.Thread | None = None
        self._seq = 0

    # lifecycle
    def start(self) -> FibWatcher:
        group = RTMGRP_IPV4_ROUTE if self.network.version == 4 else RTMGRP_IPV6_ROUTE
        self._events, self._dumps = netlink_sockets_in(self.netns, group)
        self._wake_r, self._wake_w = os.pipe()
        self._resync(resync=False)  # after bind: nothing between the dump and the events is lost
        self._reader = threading.Thread(target=self._read, name=f"fibwatch-{self.netns}", daemon=True)
        self._reader.start()
        return self

    def close(self) -> None:
        if self._reader is not None:
            os.write(self._wake_w, b"x")
            self._reader.join(timeout=5)
            self._reader = None
        for sock in (self._events, self._dumps):
            if sock is not None:
                sock.close()
        self._events = self._dumps = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> FibWatcher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # queries
    def samples(self) -> list[FibSample]:
        with self._changed:
            return list(self._samples)

    def current(self) -> FibSample:
        with self._changed:
            return self._samples[-1]

    def wait_for(self, predicate: Callable[[FibSample], bool], *, since: float, timeout: float) -> float:
        """Block until predicate holds at some time >= since; return that time (monotonic).
        Raises TimeoutError (quoting the current next hops) after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = first_time(self._samples, since, predicate)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    hops = sorted(self._samples[-1].gateways) if self._samples else []
                    raise TimeoutError(
                        f"{self.netns} {self.network}: not satisfied within {timeout:g}s; next hops now {hops}"
                    )
                self._changed.wait(remaining)

    # internals
    def _record(self, when: float, resync: bool) -> None:
        hops = self._table.hops()
        with self._changed:
            if not self._samples or self._samples[-1].hops != hops or resync:
                self._samples.append(FibSample(when, hops, resync))
                self._changed.notify_all()

    def _read(self) -> None:
        assert self._events is not None
        while True:
            ready, _, _ = select.select([self._events, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = self._events.recv(1 << 20)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # notifications were lost: start again from a dump
                    self._resync(resync=True)
                    continue
                raise
            when = self.clock()
            for msg in split_messages(data):
                update = decode_route(msg, self.network)
                if update is not None:
                    self._table.apply(update)
            self._record(when, resync=False)

    def _resync(self, resync: bool) -> None:
        when = self.clock()
        table = RouteTable(self.network.version)
        for msg in self._dump():
            update = decode_route(msg, self.network)
            if update is not None:
                table.apply(update)
        self._table = table
        self._record(when, resync=resync)

    def _dump(self) -> list:
        assert self._dumps is not None
        self._seq += 1
        request = rtmsg()
        request["family"] = socket.AF_INET if self.network.version == 4 else socket.AF_INET6
        request["header"]["type"] = RTM_GETROUTE
        request["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP
        request["header"]["sequence_number"] = self._seq
        request.encode()
        self._dumps.send(request.data)
        messages: list = []
        while True:
            for msg in split_messages(self._dumps.recv(1 << 20)):
                kind = msg["header"]["type"]
                if kind == NLMSG_DONE:
                    return messages
                if kind == NLMSG_ERROR:
                    raise LabError(f"fibwatch: route dump in {self.netns} failed")
                # a dump reply is a NEWROUTE per route
                messages.append(msg)
