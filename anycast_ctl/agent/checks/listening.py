"""`listening` check: the kernel says which listener would take a connection to host:port (I/O).

For a listener on this node (HAProxy's frontend on the VIP), a TCP connect proves what the
kernel's socket table already holds: a socket listening there with room in its accept
queue. The kernel finishes the handshake before HAProxy accepts, so a connect never showed
more than that, and it costs a socket, a handshake on `lo` and its teardown every tick (a
quarter of the agent's CPU at one VIP, docs/agent.md). Asking sock_diag for the one socket a
connect would reach is one netlink request and its answer, both inside the calls (no wait,
no epoll): ~4 µs against ~24 µs for a dump of every listener, which walks the kernel's whole
listening hash. It reads the accept queue directly too (full: soft, where a connect would
time out). The request and the verdict are in checks/listeners.py (pure).

What it does not see: netfilter rules on `lo` (not the path the routers' traffic takes) and a
listener in another network namespace (the agent runs in the LB's).
"""

from __future__ import annotations

import socket

from anycast_ctl.agent.checks.listeners import DiagError, Listener, Wanted, assess, decode_answer
from anycast_ctl.agent.checks.outcome import Outcome, one_line
from anycast_ctl.agent.checks.tcp import host_port
from anycast_ctl.config.node import ListeningCheck

NETLINK_SOCK_DIAG = 4
READ_SIZE = 4096  # one answer is one message of ~130 bytes
MAX_READS = 8  # answers to requests that gave up earlier, before ours


class ListenerTable:
    """One NETLINK_SOCK_DIAG socket for the `listening` checks that share it (the Observer's:
    one file descriptor for all of them), opened at the first lookup."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._seq = 0
        self._buffer = bytearray(READ_SIZE)
        self._view = memoryview(self._buffer)
        self.lookups = 0  # answers read, for tests and benchmarks

    def lookup(self, wanted: Wanted) -> Listener | None:
        """The listener a connect to `wanted` would reach now, or None. Raises OSError or
        DiagError when the kernel cannot be asked or answers what we cannot read."""
        try:
            return self._lookup(wanted)
        except BaseException:
            self.close()  # an answer left in the socket must not meet the next request
            raise

    def _lookup(self, wanted: Wanted) -> Listener | None:
        sock = self._sock if self._sock is not None else self._open()
        self._seq = self._seq % 0xFFFFFFFF + 1
        sock.send(wanted.request(self._seq))
        for _ in range(MAX_READS):
            try:
                size = sock.recv_into(self._buffer)
            except BlockingIOError:
                # The kernel answers inside the send: no answer queued is one we cannot trust.
                raise DiagError(0, "sock_diag queued no answer to the lookup") from None
            answer = decode_answer(self._view[:size], self._seq)
            if answer is not False:
                self.lookups += 1
                return answer if isinstance(answer, Listener) else None
        raise DiagError(0, f"no answer to the lookup within {MAX_READS} reads")

    def _open(self) -> socket.socket:
        sock = socket.socket(
            socket.AF_NETLINK,
            socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
            NETLINK_SOCK_DIAG,
        )
        self._sock = sock
        return sock

    @property
    def open(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class ListeningChecker:
    def __init__(self, name: str, spec: ListeningCheck, table: ListenerTable | None = None) -> None:
        self.name = name
        self.host = spec.host
        self.port = spec.port
        self.target = host_port(spec.host, spec.port)
        self.table = table if table is not None else ListenerTable()
        self._wanted = Wanted.of(spec.host, spec.port, self.target)
        self._ok = Outcome.ok(f"listening on {self.target}")

    async def probe(self) -> Outcome:
        return self.probe_now()

    def probe_now(self) -> Outcome:
        """The verdict now: the kernel answers inside the calls."""
        try:
            listener = self.table.lookup(self._wanted)
        except (OSError, DiagError) as exc:
            # Our view is lost, not the listener: soft, and `fall` decides.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return Outcome.soft(one_line(f"sock_diag: {reason}: {self.target}"))
        return assess(self._wanted, listener, self._ok)
