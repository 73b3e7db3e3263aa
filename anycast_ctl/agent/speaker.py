"""The pipe to ExaBGP: our stdout is its API input, its output is our stdin.

Thin I/O around the pure `anycast_ctl.agent.exabgp`. The reader must run all the time: ExaBGP
writes an ack after every command and blocks when the pipe to us is full, so a reader that
stalls stalls ExaBGP too. EOF on stdin means ExaBGP is gone, and the agent must exit.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from anycast_ctl.agent.exabgp import (
    Ack,
    Event,
    PeerState,
    Shutdown,
    Unknown,
    parse_line,
    prefixes_in,
)
from anycast_ctl.agent.pushed_lines import PushedLines

log = logging.getLogger(__name__)

# Longer lines than this are not ours to read (updates we did not ask for); skip them whole.
LINE_LIMIT = 1 << 20
# Prefixes kept written ahead of ExaBGP's answers in a big batch. ExaBGP 5.0 reads every
# command in its pipe at once, works through them 50 steps a reactor loop (a step a prefix),
# and then sleeps in poll() for its 10 ms idle timeout unless a new command arrives: a batch
# written at once idles 10 ms a loop, measured 2026-12-02 as 20 timed-out polls of 10 ms
# between the first and the last of 1,000 withdrawals (about half their time). Written as
# its answers come back (one a loop with lines of NLRI_PER_LINE, exabgp.py), each answer
# brings a new line that wakes ExaBGP at once. About three loops' work, so ExaBGP has a
# line queued while ours is on its way.
WINDOW_PREFIXES = 150


def _done(ok: bool) -> asyncio.Future[bool]:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    future.set_result(ok)
    return future


class LineReader(Protocol):
    async def readline(self) -> bytes: ...


class TextOutput(Protocol):
    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


class _Pending:
    """One command waiting for its ack. Abandoned on timeout but kept in line, so that a late
    ack is matched to it and not to the next command."""

    __slots__ = ("future", "abandoned", "sent_at", "prefixes")

    def __init__(self, future: asyncio.Future[bool] | None, sent_at: float, prefixes: int) -> None:
        self.future = future  # None: nobody waits for its answer (a probe): only its age counts
        self.abandoned = False
        self.sent_at = sent_at
        self.prefixes = prefixes  # the work it asks of ExaBGP (see exabgp.prefixes_in)


class Speaker:
    """Writes commands to ExaBGP and reads everything it writes back.

    Commands are pipelined: ExaBGP acks in order, one `done`/`error` per command.
    An ack that never comes (ExaBGP 4.2 stays silent on some malformed lines) makes that
    send and every later one time out: treat a False from `send()` as "ExaBGP is not doing
    what we say" and fail closed.
    """

    def __init__(
        self,
        reader: LineReader | PushedLines,
        writer: TextOutput,
        *,
        on_event: Callable[[Event], object] | None = None,
        ack: bool = True,
        ack_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.on_event = on_event  # may be set after construction
        self._ack = ack
        self._ack_timeout = ack_timeout
        self._clock = clock
        self._pending: collections.deque[_Pending] = collections.deque()
        self.alive = True  # False once ExaBGP's side of the pipe is gone
        self.shutting_down = False  # ExaBGP announced that it is stopping
        self.last_line_at: float | None = None  # clock() when ExaBGP last wrote to us
        self.last_write_at: float | None = None  # clock() when we last wrote a command
        self.last_ack_at: float | None = None  # clock() when ExaBGP last answered a command
        self.peers: dict[str, bool] = {}  # neighbor address -> session established
        self.ack_timeouts = 0
        self._in_flight = 0  # prefixes written and neither answered nor given up
        self._window = asyncio.Event()  # set when prefixes leave the window
        self._batches = asyncio.Lock()  # one batch written at a time, in order

    # ------------------------------------------------------------ writing
    async def send(self, line: str) -> bool:
        """Write one command; with acks on, wait for ExaBGP's answer. True means `done`."""
        return (await self.send_many([line]))[0]

    async def send_many(self, lines: list[str]) -> list[bool]:
        """Write `lines`, then wait for their acks: one result per line, in order.

        Pipelined: a line is written without waiting for the ack of the one before, and the
        acks are matched to commands by position (ExaBGP answers in order, see `_Pending`).
        With acks on, a batch carrying more than WINDOW_PREFIXES prefixes goes out as its
        acks come back, keeping that many prefixes ahead of ExaBGP (see WINDOW_PREFIXES).
        Batches go out whole and in the order they were sent: a later command waits until
        an earlier batch is written (not answered), so it can never overtake its lines.
        """
        for line in lines:
            if "\n" in line or "\r" in line or any(ord(c) < 0x20 or ord(c) == 0x7F for c in line):
                raise ValueError(f"refusing to send control characters to ExaBGP: {line!r}")
        if not lines:
            return []
        if not self._ack:
            return [self._write(lines)] * len(lines)
        answers: list[asyncio.Future[bool]] = []
        async with self._batches:
            timeouts = self.ack_timeouts
            start = 0
            while start < len(lines):
                if not self.alive:
                    answers += [_done(False) for _ in lines[start:]]
                    break
                # A batch whose lines stopped being answered goes out whole: its remaining
                # lines then time out together, not a window after another.
                whole = self.ack_timeouts > timeouts
                end = len(lines) if whole else self._fit(lines, start)
                if end == start:
                    self._window.clear()
                    await self._window.wait()
                    continue
                answers += self._send_chunk(lines[start:end])
                start = end
        return list(await asyncio.gather(*answers))

    def _fit(self, lines: list[str], start: int) -> int:
        """The end of the lines from `start` that fit in the window (one at least when
        nothing is in flight: a line bigger than the window still goes)."""
        room = WINDOW_PREFIXES - self._in_flight
        end = start
        while end < len(lines):
            size = prefixes_in(lines[end])
            if size > room and (end > start or self._in_flight > 0):
                break
            room -= size
            end += 1
        return end

    def _send_chunk(self, lines: list[str]) -> list[asyncio.Future[bool]]:
        """Queue the acks, then write the lines at once (no await in between: concurrent
        senders cannot interleave); the futures of their answers."""
        loop = asyncio.get_running_loop()
        now = self._clock()
        pendings = [_Pending(loop.create_future(), now, prefixes_in(line)) for line in lines]
        self._pending.extend(pendings)
        self._in_flight += sum(p.prefixes for p in pendings)
        if not self._write(lines):
            return [_done(False) for _ in lines]
        return [
            asyncio.ensure_future(self._answer(p, line))
            for p, line in zip(pendings, lines, strict=True)
        ]

    def probe(self, line: str) -> None:
        """Write a command whose answer nobody awaits (the ExaBGP watch's probe): with acks
        on, it waits in line like any command, so its age is `unanswered_for`'s. No task, no
        future, no timer: this runs every PROBE_EVERY seconds for the agent's whole life."""
        if not self.alive:
            return
        if self._ack:
            pending = _Pending(None, self._clock(), prefixes_in(line))
            self._pending.append(pending)
            self._in_flight += pending.prefixes
        self._write([line])

    def _write(self, lines: list[str]) -> bool:
        self.last_write_at = self._clock()
        try:
            self._writer.write("".join(line + "\n" for line in lines))
            self._writer.flush()
        except (BrokenPipeError, ConnectionError, ValueError, OSError) as exc:
            # ValueError: the stream was closed under us. Either way ExaBGP cannot hear us.
            log.error("cannot write to ExaBGP (%s); treating it as gone", exc)
            self._gone()
            return False
        return True

    async def _answer(self, pending: _Pending, line: str) -> bool:
        assert pending.future is not None  # send_many's own, always with a future
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), self._ack_timeout)
        except TimeoutError:
            pending.abandoned = True
            self._settled(pending)
            self.ack_timeouts += 1
            log.error("no ack from ExaBGP within %.1fs for: %.200s", self._ack_timeout, line)
            return False

    # ------------------------------------------------------------ liveness (the agent decides)
    def unanswered_for(self) -> float | None:
        """Seconds ExaBGP has been on the oldest unanswered command (None: none waits): since
        it was written, or since ExaBGP answered the command before it, whichever is later.
        ExaBGP answers in order, so a burst of big commands is judged one command at a time,
        and an ExaBGP that stopped reading or answering shows here first."""
        if not self._pending:
            return None
        head = self._pending[0].sent_at
        if self.last_ack_at is not None:
            head = max(head, self.last_ack_at)
        return max(0.0, self._clock() - head)

    def unanswered_prefixes(self) -> int:
        """How many prefixes the oldest unanswered command carries (0: none waits)."""
        return self._pending[0].prefixes if self._pending else 0

    def since_last_write(self) -> float | None:
        """Seconds since we last wrote a command (None: never)."""
        return None if self.last_write_at is None else max(0.0, self._clock() - self.last_write_at)

    def since_last_line(self) -> float | None:
        """Seconds since ExaBGP last wrote to us (None: never)."""
        return None if self.last_line_at is None else max(0.0, self._clock() - self.last_line_at)

    def give_up(self) -> None:
        """Treat ExaBGP as gone (it is hung and being stopped): nothing more is written, and
        every command still waiting returns False at once."""
        self._gone()

    # ------------------------------------------------------------ reading
    async def run_reader(self) -> None:
        """Read ExaBGP's output until EOF, dispatching every event. Returns when ExaBGP is gone.
        From our stdin each line is handled in the loop pass that reads it (PushedLines).

        Exceptions raised by `on_event` propagate: a broken handler is a bug, and a visible
        crash (the agent exits, the lifeline stops ExaBGP) is safer than a silent one.
        """
        if isinstance(self._reader, PushedLines):
            try:
                await self._reader.listen(self._read)
            except (ConnectionError, OSError) as exc:
                log.error("reading from ExaBGP failed: %s", exc)
            log.warning("ExaBGP closed our stdin: it is gone")
            self._gone()
            return
        while True:
            try:
                raw = await self._reader.readline()
            except (ValueError, asyncio.LimitOverrunError) as exc:
                log.warning("skipping an over-long line from ExaBGP: %s", exc)
                continue
            except (ConnectionError, OSError) as exc:
                log.error("reading from ExaBGP failed: %s", exc)
                raw = b""
            if not raw:
                log.warning("ExaBGP closed our stdin: it is gone")
                self._gone()
                return
            self._read(raw)

    def _read(self, raw: bytes | str) -> None:
        self.last_line_at = self._clock()
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        self._dispatch(parse_line(text))

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Ack):
            self._match_ack(event.ok)
        elif isinstance(event, PeerState):
            previous = self.peers.get(event.address)
            self.peers[event.address] = event.up
            if previous != event.up:
                log.info("BGP session with %s is %s", event.address, "up" if event.up else "down")
        elif isinstance(event, Shutdown):
            log.warning("ExaBGP says it is shutting down")
            self.shutting_down = True
        elif isinstance(event, Unknown) and event.line.strip():
            log.info("ignoring a line from ExaBGP: %.200s", event.line.rstrip())
        if self.on_event is not None:
            self.on_event(event)

    def _match_ack(self, ok: bool) -> None:
        self.last_ack_at = self._clock()
        if not self._pending:
            log.warning(
                "ExaBGP acked (%s) a command we are not waiting for", "done" if ok else "error"
            )
            return
        pending = self._pending.popleft()
        if not pending.abandoned:
            self._settled(pending)
        if pending.abandoned:
            log.warning(
                "late ack (%s) for a command that already timed out", "done" if ok else "error"
            )
        elif pending.future is not None and not pending.future.done():
            pending.future.set_result(ok)

    def _settled(self, pending: _Pending) -> None:
        """`pending` is answered or given up: its prefixes leave the window."""
        self._in_flight -= pending.prefixes
        self._window.set()

    def _gone(self) -> None:
        self.alive = False
        self._in_flight = 0
        self._window.set()
        while self._pending:
            pending = self._pending.popleft()
            if pending.future is not None and not pending.future.done():
                pending.future.set_result(False)


async def stdio_speaker(**options) -> Speaker:
    """A Speaker on our real stdin/stdout, for an agent that ExaBGP runs as its API process."""
    reader, writer = await open_stdio()
    return Speaker(reader, writer, **options)


async def open_stdio(limit: int = LINE_LIMIT) -> tuple[PushedLines, TextIO]:
    """A reader on our real stdin and the real stdout, for a Speaker inside ExaBGP."""
    loop = asyncio.get_running_loop()
    lines = PushedLines(limit)
    try:
        await loop.connect_read_pipe(lambda: lines, sys.stdin)
    except ValueError:
        # stdin is a file or a terminal (someone running the agent by hand): read it in a thread.
        _feed_from_thread(loop, lines, sys.stdin.buffer)
    return lines, sys.stdout


def _feed_from_thread(loop: asyncio.AbstractEventLoop, lines: PushedLines, stream) -> None:
    def pump() -> None:
        for chunk in iter(stream.readline, b""):
            loop.call_soon_threadsafe(lines.data_received, chunk)
        loop.call_soon_threadsafe(lines.eof_received)

    threading.Thread(target=pump, name="stdin-reader", daemon=True).start()
