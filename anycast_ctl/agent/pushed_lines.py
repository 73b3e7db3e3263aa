"""ExaBGP's output to us, line by line, handed to a callback from the pipe's protocol.

ExaBGP answers every command, the ExaBGP watch's probe ten times a second included. Read with
an `asyncio.StreamReader`, each answer wakes a reader task in a loop pass of its own after
the pass that read it: here the line is handled in the pass that reads it (a quiet tick's
answers, HAProxy's and ExaBGP's, come in one pass). Lines over `limit` bytes are not ours
to read (updates we did not ask for): they are skipped whole, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from anycast_ctl.read_size import read_in_small_chunks

log = logging.getLogger("anycast_ctl.agent.speaker")


class PushedLines(asyncio.Protocol):
    """A protocol for a read pipe; `listen(on_line)` hands it every line (newline included)
    until EOF. Lines that came before `listen` wait for it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._skipping = False  # inside an over-long line, until its newline
        self._waiting: list[bytes] = []  # lines before `listen`
        self._on_line: Callable[[bytes], object] | None = None
        self._ended: asyncio.Future[None] | None = None
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        read_in_small_chunks(transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start : end + 1])
            start = end + 1
            if self._skipping:
                self._skipping = False
            elif len(line) > self.limit:
                log.warning("skipping an over-long line from ExaBGP (%d bytes)", len(line))
            else:
                self._line(line)
        del self._buffer[:start]
        if len(self._buffer) > self.limit:
            if not self._skipping:
                log.warning("skipping an over-long line from ExaBGP (over %d bytes)", self.limit)
            self._skipping = True
            self._buffer.clear()

    def eof_received(self) -> bool:
        self._end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    async def listen(self, on_line: Callable[[bytes], object]) -> None:
        """Hand every line to `on_line` until EOF (a last line without a newline included).
        An exception `on_line` raises ends this with it."""
        self._ended = asyncio.get_running_loop().create_future()
        self._on_line = on_line
        waiting, self._waiting = self._waiting, []
        for line in waiting:
            self._line(line)
        if self._eof:
            self._end()
        await self._ended

    def _line(self, line: bytes) -> None:
        if self._on_line is None:
            self._waiting.append(line)
            return
        if self._ended is not None and self._ended.done():
            return
        try:
            self._on_line(line)
        except Exception as exc:  # a broken handler: the listener dies visibly
            if self._ended is not None:
                self._ended.set_exception(exc)

    def _end(self) -> None:
        if not self._eof:
            self._eof = True
            if self._buffer and not self._skipping:
                line, self._buffer = bytes(self._buffer), bytearray()
                self._line(line)
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)
