"""HAProxy check over the runtime API (the unix stats socket): frontend OPEN, enough servers UP.

A missing socket or a refused connection (HAProxy gone, stale socket file) is hard;
everything HAProxy itself reports (frontend paused, too few servers) is soft.

One `HaproxySource` per stats socket serves every check that reads it: the checks of one tick
share one connection and one answer (the rows of every proxy they need), so the cost per tick
grows with sockets, not with VIPs. The source also watches HAProxy between ticks: it holds an
idle interactive connection, whose EOF is HAProxy's death (or an idle timeout, or a reload);
one connect then tells which, and a dead HAProxy is reported at once, not at the next tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from anycast_ctl.agent.checks import haproxy_stat
from anycast_ctl.agent.checks.outcome import Outcome, classify_error
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import HaproxyCheck
from anycast_ctl.errors import UserError

log = logging.getLogger(__name__)

ANSWER_CAP = 16 * 1024 * 1024  # bytes; a full dump of 1,000 proxies with servers is ~2 MB
# Filtered commands for up to this many bytes of command line (HAProxy reads one line into a
# 16 KB buffer); more proxies than that and one full dump of frontends/backends/servers is cheaper.
COMMAND_LIMIT = 8 * 1024
FULL_DUMP = b"show stat -1 7 -1\n"


class HaproxySource:
    """One stats socket: one `show stat` per tick for all its checks, and a death watch."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.target = str(socket)
        self.proxies: set[str] = set()  # every frontend and backend some check needs
        self._inflight: asyncio.Future[dict[str, list[haproxy_stat.StatRow]]] | None = None
        self.fetches = 0  # answers read from HAProxy, for tests and benchmarks

    def command(self) -> bytes:
        names = sorted(self.proxies)
        chained = "; ".join(f"show stat {name} 7 -1" for name in names)
        if not names or len(chained) > COMMAND_LIMIT:
            return FULL_DUMP
        return chained.encode("ascii") + b"\n"

    async def rows(self) -> dict[str, list[haproxy_stat.StatRow]]:
        """Rows by proxy name. Callers at the same time share one read of the socket."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch())
            self._inflight.add_done_callback(self._fetched)
        return await asyncio.shield(self._inflight)

    def _fetched(self, future: asyncio.Future) -> None:
        self._inflight = None
        if not future.cancelled():
            future.exception()  # retrieved here: every waiter may have timed out

    async def _fetch(self) -> dict[str, list[haproxy_stat.StatRow]]:
        command = self.command()
        reader, writer = await asyncio.open_unix_connection(self.target)
        try:
            writer.write(command)
            await writer.drain()
            # Without "prompt", HAProxy answers the command line and closes.
            data = await _read_to_eof(reader, ANSWER_CAP)
        finally:
            writer.transport.abort()
        self.fetches += 1
        answers = haproxy_stat.split_responses(data.decode("utf-8", errors="replace"))
        expected = 1 if command == FULL_DUMP else command.count(b";") + 1
        if len(answers) != expected:
            raise UserError.single(
                "<haproxy show stat>", "", f"expected {expected} answers, got {len(answers)}"
            )
        by_proxy: dict[str, list[haproxy_stat.StatRow]] = {}
        for answer in answers:
            for row in haproxy_stat.rows_of_answer(answer):
                by_proxy.setdefault(row.proxy, []).append(row)
        return by_proxy

    async def watch(self, on_down: Callable[[Outcome], object], retry: float) -> None:
        """Until cancelled: hold an idle connection; on its EOF, tell a death from the rest.

        `on_down(outcome)` gets a hard outcome the moment HAProxy is found dead. While the
        socket cannot be reached, try again every `retry` seconds (the checks report it).
        """
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.target)
            except OSError:
                await asyncio.sleep(retry)
                continue
            try:
                writer.write(b"prompt\n")  # interactive: HAProxy keeps the connection open
                await writer.drain()
                while await reader.read(4096):
                    pass  # the prompt, then nothing until HAProxy closes (or dies)
            except OSError:
                pass
            finally:
                writer.transport.abort()
            outcome = await self.alive()
            if outcome is not None:
                log.warning("HAProxy at %s is gone: %s", self.target, outcome.detail)
                on_down(outcome)
                await asyncio.sleep(retry)

    async def alive(self) -> Outcome | None:
        """None if something accepts on the socket, else the hard outcome of the attempt."""
        try:
            _, writer = await asyncio.open_unix_connection(self.target)
        except OSError as exc:
            outcome = classify_error(exc, self.target)
            return outcome if outcome is not None and outcome.health is Health.HARD_FAIL else None
        writer.transport.abort()
        return None


class HaproxyChecker:
    def __init__(self, name: str, spec: HaproxyCheck, source: HaproxySource | None = None) -> None:
        for field, value in (("frontend", spec.frontend), ("backend", spec.backend)):
            if not haproxy_stat.valid_proxy_name(value):
                raise UserError.single(
                    "node config",
                    f"checks.{name}.{field}",
                    f"{value!r} is not an HAProxy proxy name (letters, digits, '_', '.', ':', '-')",
                )
        self.name = name
        self.socket = spec.socket
        self.frontend = spec.frontend
        self.backend = spec.backend
        self.min_servers_up = spec.min_servers_up
        self.source = source if source is not None else HaproxySource(spec.socket)
        self.source.proxies |= {spec.frontend, spec.backend}
        self.target = str(spec.socket)

    async def probe(self) -> Outcome:
        rows = await self.source.rows()
        mine = rows.get(self.frontend, []) + (
            rows.get(self.backend, []) if self.backend != self.frontend else []
        )
        return haproxy_stat.assess(mine, self.frontend, self.backend, self.min_servers_up)


async def _read_to_eof(reader: asyncio.StreamReader, cap: int) -> bytes:
    data = bytearray()
    while chunk := await reader.read(65536):
        data += chunk
        if len(data) > cap:
            raise UserError.single("<haproxy show stat>", "", f"answer longer than {cap} bytes")
    return bytes(data)
