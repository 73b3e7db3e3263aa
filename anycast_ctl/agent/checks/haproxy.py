"""HAProxy check over the runtime API (the unix stats socket): frontend OPEN, enough servers UP.

A missing socket or a refused connection (HAProxy gone, stale socket file) is hard;
everything HAProxy itself reports (frontend paused, too few servers) is soft.

One `HaproxySource` per stats socket serves every check that reads it: the checks of one tick
share one question and one answer (the rows of every proxy they need) on one interactive
connection kept open, so the cost per tick grows with sockets, not with VIPs, and no tick
pays for a connect. That connection is also the death watch: its EOF is HAProxy's death (or
an idle timeout, or a reload); one connect then tells which, and a dead HAProxy is reported
at once, not at the next tick.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from anycast_ctl.agent.checks import haproxy_stat
from anycast_ctl.agent.checks.haproxy_cli import Answer, StatsCli
from anycast_ctl.agent.checks.outcome import Outcome, classify_error
from anycast_ctl.agent.health import Health
from anycast_ctl.agent.path_watch import RemovalWatch
from anycast_ctl.config.node import HaproxyCheck
from anycast_ctl.errors import UserError

log = logging.getLogger(__name__)

# Filtered commands for up to this many bytes of command line (HAProxy reads one line into a
# 16 KB buffer); more proxies than that and one full dump of frontends/backends/servers is cheaper.
COMMAND_LIMIT = 8 * 1024
FULL_DUMP = b"show stat -1 7 -1\n"
LOOK_AGAIN_AFTER = 0.005  # s between connects to a HAProxy that reset the last one
T = TypeVar("T")


Rows = dict[str, list[haproxy_stat.StatRow]]


class HaproxySource:
    """One stats socket: one `show stat` per tick for all its checks, and a death watch.

    The connection is interactive and kept open: no connect per tick, and its EOF (HAProxy's
    kernel closing it) is the death signal. A tick still looks at the socket's path (gone:
    hard, as without a connection; a new inode: a new HAProxy, reconnect) and asks
    `show info` with the stats, so a worker that is stopping after a reload is left for the
    new one at once.

    On an open connection a tick's question is written by the caller itself and the answer
    is handed to each waiting caller from the protocol's callback: no task and no shield a
    tick (each costs loop passes, ten times a second for the agent's whole life). A caller
    that gives up (its check's timeout) leaves the question out: the next tick's caller
    waits for the same answer instead of asking again.
    """

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.target = str(socket)
        self.proxies: set[str] = set()  # every frontend and backend some check needs
        # Callers waiting for the answer out, each with what it makes of the rows.
        self._waiters: list[tuple[asyncio.Future[Any], Callable[[Rows], Any]]] = []
        # Called once the answer out is handed to the waiters, in that same callback.
        self._delivered: list[Callable[[], object]] = []
        self._asking = False  # a question is out, or a task is connecting to put it out
        # That task, while it runs: held, as the loop keeps only a weak reference to it.
        self._fetcher: asyncio.Task | None = None
        self._cli: StatsCli | None = None
        self._inode: tuple[int, int] | None = None
        self._lost = asyncio.Event()
        self._connecting = asyncio.Lock()  # the watch and a tick may both want a connection
        self.fetches = 0  # answers read from HAProxy, for tests and benchmarks
        self.connects = 0

    def command(self) -> bytes:
        names = sorted(self.proxies)
        chained = "; ".join(f"show stat {name} 7 -1" for name in names)
        if not names or len(chained) > COMMAND_LIMIT:
            return b"show info; " + FULL_DUMP
        return b"show info; " + chained.encode("ascii") + b"\n"

    async def rows(self) -> Rows:
        """Rows by proxy name. Callers at the same time share one question to HAProxy."""
        return await self.ask(_as_is)

    def ask(self, judge: Callable[[Rows], T]) -> asyncio.Future[T]:
        """`rows()`, begun now, with the rows judged as they come: the question is out (on
        an open connection) when this returns; the future gets `judge(rows)` or the error,
        straight from the protocol's callback (no task in between)."""
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._waiters:
            self._waiters = [(w, j) for w, j in self._waiters if not w.done()]  # gave up
        self._waiters.append((waiter, judge))
        if not self._asking:
            self._asking = True
            self._ask()
        return waiter

    def when_delivered(self, callback: Callable[[], object]) -> None:
        """`callback()` once, right after the answer out (or its error) is handed to the
        waiters: their futures are done then, their own callbacks a loop pass away."""
        self._delivered.append(callback)

    def _ask(self) -> None:
        """The question, now if the open connection is still to the HAProxy at the path;
        else a task that connects first."""
        cli = self._cli
        if cli is not None and not cli.closed and not self._connecting.locked():
            try:
                stat = os.stat(self.target)  # gone: FileNotFoundError, a hard failure
            except OSError as exc:
                self._deliver(exc)
                return
            if (stat.st_dev, stat.st_ino) == self._inode:
                command = self.command()
                cli.send(command, command.count(b";") + 1, self._answered)
                return
        self._fetch_in_task(attempts=2)

    def _fetch_in_task(self, attempts: int) -> None:
        self._fetcher = asyncio.get_running_loop().create_task(
            self._fetch(attempts), name="haproxy-fetch"
        )

    def _answered(self, answer: Answer) -> None:
        if isinstance(answer, BaseException):
            self._deliver(answer)
            return
        answers = _decoded(answer)
        if _stopping(answers[0]):
            if self._cli is not None:
                self._cli.close()  # an old worker after a reload: ask the new one, once
            self._fetch_in_task(attempts=1)
            return
        self._deliver_parsed(answers)

    async def _fetch(self, attempts: int) -> None:
        """Connect if need be, ask; a stopping worker's answer is asked again of a new
        connection while `attempts` last. Hands the rows (or the error) to the callers."""
        try:
            for attempt in range(attempts):
                cli = await self._connection()
                command = self.command()
                answers = _decoded(await cli.ask(command, command.count(b";") + 1))
                if _stopping(answers[0]) and attempt + 1 < attempts:
                    cli.close()
                    continue
                break
        except asyncio.CancelledError:
            self._deliver(ConnectionResetError(errno.ECONNRESET, "stopped asking HAProxy"))
            raise
        except Exception as exc:  # an I/O error: the checks classify it
            self._deliver(exc)
            return
        self._deliver_parsed(answers)

    def _deliver_parsed(self, answers: list[str]) -> None:
        """The rows of the `show stat` answers (after `show info`'s), or why there are none:
        the checks classify a bad answer (and let a bug propagate)."""
        self.fetches += 1
        by_proxy: Rows = {}
        try:
            for answer in answers[1:]:
                for row in haproxy_stat.rows_of_answer(answer):
                    by_proxy.setdefault(row.proxy, []).append(row)
        except Exception as exc:
            self._deliver(exc)
            return
        self._deliver(by_proxy)

    def _deliver(self, result: Rows | BaseException) -> None:
        """The question is over: every caller still waiting gets the rows or the error."""
        self._asking = False
        self._fetcher = None
        waiters, self._waiters = self._waiters, []
        for waiter, judge in waiters:
            if waiter.done():
                continue
            if isinstance(result, BaseException):
                waiter.set_exception(result)
                continue
            try:
                judged = judge(result)
            except Exception as exc:  # a bad answer, or a bug: the check classifies it
                waiter.set_exception(exc)
            else:
                waiter.set_result(judged)
        delivered, self._delivered = self._delivered, []
        for callback in delivered:
            callback()

    async def _connection(self) -> StatsCli:
        """The open connection, or a new one; the socket file must be the one we talk to."""
        async with self._connecting:
            return await self._connect()

    async def _connect(self) -> StatsCli:
        stat = os.stat(self.target)  # gone: FileNotFoundError, a hard failure
        inode = (stat.st_dev, stat.st_ino)
        if self._cli is not None and not self._cli.closed and inode == self._inode:
            return self._cli
        if self._cli is not None:
            self._cli.close()
        loop = asyncio.get_running_loop()
        _, cli = await loop.create_unix_connection(lambda: StatsCli(self._cli_lost), self.target)
        self.connects += 1
        try:
            await cli.ask(b"prompt\n")  # interactive: HAProxy keeps the connection open
        except BaseException:
            cli.close()
            raise
        self._cli, self._inode = cli, inode
        self._lost.clear()
        return cli

    def _cli_lost(self, cli: StatsCli) -> None:
        if cli is self._cli:  # not one we replaced ourselves (a new inode, a stopping worker)
            self._lost.set()

    async def watch(self, on_down: Callable[[Outcome], object], retry: float) -> None:
        """Until cancelled: keep the connection open; when it closes, tell a death from the rest.

        `on_down(outcome)` gets a hard outcome the moment HAProxy is found dead (its kernel
        closed our connection and nothing accepts on the socket any more). An idle timeout
        (`stats timeout`) or a reload closes it too, but then a new connection succeeds.
        While the socket cannot be reached, try again every `retry` seconds (the checks
        report it meanwhile). The socket file leaving its directory (inotify) counts as a
        lost connection too: HAProxy may run on, but nothing can reach it there any more.
        """
        removal = RemovalWatch(self.socket, self._lost.set)
        removal.start()
        try:
            while True:
                try:
                    await self._connection()
                except (OSError, UserError):
                    await asyncio.sleep(retry)
                    continue
                await self._lost.wait()
                outcome = await self._after_loss()
                if outcome is not None:
                    log.warning("HAProxy at %s is gone: %s", self.target, outcome.detail)
                    on_down(outcome)
                    await asyncio.sleep(retry)
        finally:
            removal.stop()

    async def _after_loss(self, patience: float = 1.0) -> Outcome | None:
        """Our connection closed: None if HAProxy answers a new one, else why it is dead.

        A connect alone proves little: a dying HAProxy may close our connection before its
        listener, and a connect queued on that listener succeeds and is then reset. So the
        new connection must answer `prompt`; a reset means look again (a few ms later: the
        dying process is still closing its files), and refused or a missing socket file is
        the death. It looks until `patience` runs out, not a fixed number of times: three
        looks in a row can all land in that window, and the death is then left to the next
        tick (the likely cause of one CI failure: a SIGKILLed HAProxy with 300 frontends
        withdrawn at the next tick, 1.7 s later, not at once). No answer within `patience`
        (a hung HAProxy) is not a death: the soft checks judge that.
        """
        try:
            async with asyncio.timeout(patience):
                while True:
                    try:
                        await self._connection()
                        return None
                    except OSError as exc:
                        outcome = classify_error(exc, self.target)
                        if outcome is not None and outcome.health is Health.HARD_FAIL:
                            return outcome
                    await asyncio.sleep(LOOK_AGAIN_AFTER)
        except TimeoutError:
            return None


def _as_is(rows: Rows) -> Rows:
    return rows


def _decoded(raw: list[bytes]) -> list[str]:
    return [a.decode("utf-8", errors="replace").strip("\n") for a in raw]


def _stopping(info: str) -> bool:
    """`show info` of a worker that is stopping (an old one after a reload)."""
    return "\nStopping: 1" in "\n" + info


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
        return await self.probe_now()

    def probe_now(self) -> asyncio.Future[Outcome]:
        """The question goes out now; the future gets this check's outcome of the answer."""
        return self.source.ask(self.judge)

    def judge(self, rows: Rows) -> Outcome:
        mine = rows.get(self.frontend, []) + (
            rows.get(self.backend, []) if self.backend != self.frontend else []
        )
        return haproxy_stat.assess(mine, self.frontend, self.backend, self.min_servers_up)
