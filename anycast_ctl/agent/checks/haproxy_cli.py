"""One interactive connection to HAProxy's stats socket (the runtime API), as a protocol.

The HAProxy check's source (checks/haproxy.py) keeps one open per socket: a question a tick,
each answer handed to a callback from `data_received`, and its close as the death watch.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable

from anycast_ctl.errors import UserError
from anycast_ctl.read_size import read_in_small_chunks

ANSWER_CAP = 16 * 1024 * 1024  # bytes; a full dump of 1,000 proxies with servers is ~2 MB
PROMPT = b"\n> "
_SOURCE = "<haproxy show stat>"

Answer = list[bytes] | BaseException  # the raw answer of each command of a line, or why none


class StatsCli(asyncio.Protocol):
    """One interactive (`prompt`) connection to the stats socket.

    HAProxy ends the answer to each command of a line (commands are split on ";") with the
    prompt "\\n> "; no answer holds it (no line of `show stat` or `show info` starts with
    "> "), so n prompts end the answers to n commands.
    """

    def __init__(self, on_lost: Callable[[StatsCli], object]) -> None:
        self._buffer = bytearray()
        self._prompts = 0  # prompts in the buffer
        self._want = 0
        self._on_answer: Callable[[Answer], object] | None = None
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        read_in_small_chunks(transport)  # an answer a tick: no 256 KiB buffer for each

    def data_received(self, data: bytes) -> None:
        start = max(0, len(self._buffer) - len(PROMPT) + 1)  # a prompt split across reads
        self._buffer += data
        self._prompts += self._buffer.count(PROMPT, start)
        if len(self._buffer) > ANSWER_CAP:
            self._fail(UserError.single(_SOURCE, "", f"answer longer than {ANSWER_CAP} bytes"))
        elif self._on_answer is not None and self._prompts >= self._want:
            answers = bytes(self._buffer).split(PROMPT)[: self._want]
            self._buffer.clear()
            self._prompts = 0
            on_answer, self._on_answer = self._on_answer, None
            on_answer(answers)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError(errno.ECONNRESET, "HAProxy closed the stats connection"))
        self._on_lost(self)

    def _fail(self, exc: Exception) -> None:
        on_answer, self._on_answer = self._on_answer, None
        if on_answer is not None:
            on_answer(exc)
        self.close()

    def send(self, line: bytes, commands: int, on_answer: Callable[[Answer], object]) -> None:
        """Send one command line; `on_answer` gets the raw answer of each of its `commands`
        commands (or the error), once, from the protocol's callback: no task, no future."""
        if self.closed or self.transport is None:
            raise ConnectionResetError(errno.ECONNRESET, "HAProxy closed the stats connection")
        assert self._on_answer is None, "one question at a time"
        self._on_answer = on_answer
        self._want = commands
        self.transport.write(line)

    async def ask(self, line: bytes, commands: int = 1) -> list[bytes]:
        """`send`, awaited."""
        answer: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()

        def settle(result: Answer) -> None:
            if answer.done():
                return
            if isinstance(result, BaseException):
                answer.set_exception(result)
            else:
                answer.set_result(result)

        self.send(line, commands, settle)
        try:
            return await answer
        except asyncio.CancelledError:
            self.close()  # an answer may still come: never give it to the next question
            raise

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
