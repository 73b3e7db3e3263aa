"""`listening` check: the kernel's own table says something listens on host:port (I/O).

For a listener on this node (HAProxy's frontend on the VIP), a TCP connect proves what the
kernel's socket table already holds: a socket listening there with room in its accept
queue. The kernel finishes the handshake before HAProxy accepts, so a connect never showed
more than that, and it costs a socket, a handshake on `lo` and its teardown every tick (a
quarter of the agent's CPU at one VIP, docs/agent.md). Asking sock_diag costs one netlink
request, and one answer serves every `listening` check of a tick (`ListenerTable`, which
the Observer expires as each run of checks begins), so
1,000 VIPs on 1,000 frontends cost one dump a tick, not 1,000 connects. It reads the accept
queue directly, too (full: soft, where a connect would time out).

What it does not see: netfilter rules on `lo` (not the path the routers' traffic takes) and a
listener in another network namespace (the agent runs in the LB's). The decoding and the
verdict are in checks/listeners.py (pure).
"""

from __future__ import annotations

import socket

from anycast_ctl.agent.checks.listeners import (
    AF_INET,
    AF_INET6,
    ByPort,
    DumpError,
    Listener,
    Wanted,
    assess,
    by_port,
    decode_reply,
    dump_request,
    reached,
)
from anycast_ctl.agent.checks.outcome import Outcome, one_line
from anycast_ctl.agent.checks.tcp import host_port
from anycast_ctl.config.node import ListeningCheck

NETLINK_SOCK_DIAG = 4
READ_SIZE = 64 * 1024  # the kernel fills a dump's reads up to 32 KiB
MAX_READS = 1024  # ~30 MiB of messages: more is a dump that never ends


class ListenerTable:
    """One NETLINK_SOCK_DIAG socket, and each family's dump until `expire()`: whoever shares
    a table expires it as a round of checks begins (the Observer: each tick, and each run an
    event asks for), so the round's checks share one dump and no round reads an older one."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._seq = 0
        self._buffer = bytearray(READ_SIZE)
        self._latest: dict[int, ByPort] = {}
        self.dumps = 0  # dumps read, for tests and benchmarks

    def expire(self) -> None:
        """The next look reads the kernel again."""
        self._latest.clear()

    def listeners(self, family: int) -> ByPort:
        """The TCP listeners of `family` by port, as of this round's dump (read now if the
        round has none). Raises OSError or DumpError when the kernel cannot be asked or
        answers wrong."""
        latest = self._latest.get(family)
        if latest is not None:
            return latest
        try:
            found = by_port(self._dump(family))
        except BaseException:
            self.close()  # what is left of that dump in the socket must not meet the next
            raise
        self._latest[family] = found
        return found

    def _dump(self, family: int) -> list[Listener]:
        sock = self._sock if self._sock is not None else self._open()
        self._seq = self._seq % 0xFFFFFFFF + 1
        sock.send(dump_request(family, self._seq))
        found: list[Listener] = []
        view = memoryview(self._buffer)
        for _ in range(MAX_READS):
            try:
                size = sock.recv_into(self._buffer)
            except BlockingIOError:
                # The kernel queues each part of a dump before the call that asks for it
                # returns: an empty queue mid-dump is an answer we cannot trust.
                raise DumpError(0, "the listener dump stopped before its end") from None
            if decode_reply(view[:size], self._seq, found):
                self.dumps += 1
                return found
        raise DumpError(0, f"the listener dump did not end within {MAX_READS} reads")

    def _open(self) -> socket.socket:
        sock = socket.socket(
            socket.AF_NETLINK,
            socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
            NETLINK_SOCK_DIAG,
        )
        self._sock = sock
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._latest.clear()


class ListeningChecker:
    def __init__(self, name: str, spec: ListeningCheck, table: ListenerTable | None = None) -> None:
        self.name = name
        self.host = spec.host
        self.port = spec.port
        self.target = host_port(spec.host, spec.port)
        # A table of its own (no one else to expire it): a dump every probe.
        self._own_table = table is None
        self.table = table if table is not None else ListenerTable()
        self._wanted = Wanted.of(spec.host, spec.port, self.target)
        self._ok = Outcome.ok(f"listening on {self.target}")

    async def probe(self) -> Outcome:
        return self.probe_now()

    def probe_now(self) -> Outcome:
        """The verdict now: no wait, the kernel answers inside the calls."""
        wanted = self._wanted
        if self._own_table:
            self.table.expire()
        try:
            same_family = self.table.listeners(wanted.family)
            found = reached(wanted, same_family, None)
            if not found and wanted.family == AF_INET:
                found = reached(wanted, same_family, self.table.listeners(AF_INET6))
        except (OSError, DumpError) as exc:
            # Our view is lost, not the listener: soft, and `fall` decides.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return Outcome.soft(one_line(f"sock_diag: {reason}: {self.target}"))
        return assess(wanted, found, self._ok)
