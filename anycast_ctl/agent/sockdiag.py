"""The agent's one NETLINK_SOCK_DIAG socket: listening sockets closing, as they close (I/O).

The kernel broadcasts every TCP socket it frees in this network namespace (the agent runs in
the LB's) to the sock_diag destroy groups; anyone may listen, no capability needed (checked
on Linux 6.18 as an unprivileged user). A classic BPF filter on our socket
(listener_events.filter_program) keeps only peerless sockets on the checks' ports, so the
closes of the node's connections are dropped in the kernel before they reach our queue: the
agent wakes for a listener closing, not for traffic. What the messages mean is decided in
listener_events.py (pure).

Stdlib sockets, not pyroute2: pyroute2 would add ~11 MiB of imports (agent/rtnl.py) and has
no socket filter to attach; the socket is four calls.
"""

from __future__ import annotations

import array
import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable, Mapping

from anycast_ctl.agent import listener_events
from anycast_ctl.agent.listener_events import Endpoint

log = logging.getLogger(__name__)

NETLINK_SOCK_DIAG = 4
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
SO_ATTACH_FILTER = 26
_RCVBUF = 256 * 1024  # a burst of listener closes (HAProxy stopping) must not overflow it
_FPROG = struct.Struct("@HP")  # struct sock_fprog: len, filter pointer


def _attach(sock: socket.socket, ports: list[int]) -> None:
    count, program = listener_events.filter_program(ports)
    buffer = array.array("B", program)  # alive until setsockopt returns: the kernel copies it
    sock.setsockopt(
        socket.SOL_SOCKET, SO_ATTACH_FILTER, _FPROG.pack(count, buffer.buffer_info()[0])
    )


def open_destroy_socket(ports: list[int], filtered: bool = True) -> socket.socket:
    """A non-blocking socket joined to both TCP destroy groups, with the filter attached first
    (so nothing unfiltered is ever queued). Raises OSError when the kernel refuses."""
    sock = socket.socket(
        socket.AF_NETLINK,
        socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
        NETLINK_SOCK_DIAG,
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        if filtered:
            _attach(sock, ports)
        sock.bind((0, 0))
        for group in (
            listener_events.SKNLGRP_INET_TCP_DESTROY,
            listener_events.SKNLGRP_INET6_TCP_DESTROY,
        ):
            sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
    except BaseException:
        sock.close()
        raise
    return sock


class ListenerWatch:
    """Calls `on_closed(check names)` when a listener one of those checks may use closes.

    `wakeups` and `messages` count what reached us (tests and benchmarks): with the filter,
    connections opening and closing add nothing to either.
    """

    def __init__(
        self,
        endpoints: Mapping[Endpoint, set[str]],
        on_closed: Callable[[set[str]], object],
        filtered: bool = True,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.on_closed = on_closed
        self.filtered = filtered
        self.wakeups = 0
        self.messages = 0
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> bool:
        """Subscribe; False (one warning logged) when the kernel refuses: the checks' polls
        still find a closed listener, at their next tick."""
        try:
            self._sock = open_destroy_socket(
                sorted({e.port for e in self.endpoints}), self.filtered
            )
        except OSError as exc:
            log.warning(
                "cannot watch for listeners closing (sock_diag destroy groups: %s); a closed"
                " listener is found by the next check instead",
                exc.strerror or exc,
            )
            return False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)
        return True

    def _readable(self) -> None:
        self.wakeups += 1
        closed: list[listener_events.ClosedSocket] = []
        lost = False
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                lost = True  # the queue overflowed: some closes are unknown
                continue
            found, count = listener_events.decode(data)
            self.messages += count
            closed += found
        if lost:
            log.warning("listener watch: the kernel dropped messages; checking every endpoint")
            hit = set().union(*self.endpoints.values())
        else:
            hit = listener_events.checks_hit(closed, self.endpoints)
        if hit:
            self.on_closed(hit)

    def stop(self) -> None:
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
