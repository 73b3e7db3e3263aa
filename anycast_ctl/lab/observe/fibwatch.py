"""When exactly did a router's kernel stop (or start) using a next hop for a prefix?

`FibWatcher(netns, prefix)` listens to the namespace's route notifications (rtnetlink groups
RTMGRP_IPV4_ROUTE / RTMGRP_IPV6_ROUTE) on a reader thread, and records the prefix's next-hop
set with a CLOCK_MONOTONIC timestamp taken the moment each notification is read. Polling
`ip route` would add up to a poll interval of error; an event stream is exact to the
scheduling delay of one thread. What the notifications mean: lab/observe/fibstate.py.

The sockets come from lab/net/netns.py (`route_sockets`: created inside the namespace by a
short-lived thread; a socket stays in the namespace it was created in), so this module only
reads and decodes, and the process never leaves the root namespace.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.net.netns import route_sockets
from anycast_ctl.lab.observe.fibstate import (
    FibSample,
    Hop,
    RouteTable,
    decode_route,
    first_time,
    state_at,
    with_any,
    without,
)

RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400

# Callers need only this module: the pure helpers they combine with a watcher come along.
__all__ = ["FibSample", "FibWatcher", "Hop", "first_time", "state_at", "with_any", "without"]


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
        self._events, self._dumps = route_sockets(self.netns, group)
        self._wake_r, self._wake_w = os.pipe()
        self._resync(resync=False)  # after bind: nothing between the dump and the events is lost
        self._reader = threading.Thread(
            target=self._read, name=f"fibwatch-{self.netns}", daemon=True
        )
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

    def wait_for(
        self, predicate: Callable[[FibSample], bool], *, since: float, timeout: float
    ) -> float:
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
                        f"{self.netns} {self.network}: not satisfied within {timeout:g}s; "
                        f"next hops now {hops}"
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
            ready, _, _ = select.select([self._events.fileno(), self._wake_r], [], [])
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
