"""Fail closed when the agent's event loop hangs.

A hung loop keeps the process (and so the BGP session) alive while nothing checks health:
the worst case, because the VIP stays announced. A plain thread watches a heartbeat the loop
bumps; if the loop stops bumping it for `stall_limit` seconds, the thread kills the process
with SIGKILL. ExaBGP then sees its API process die and, configured with api.terminate, exits:
the session closes and every router withdraws the node's routes. A whole-process freeze
(SIGSTOP) stops this thread too; that case is left to the BGP hold timer (see docs/agent.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class LoopWatchdog:
    def __init__(self, stall_limit: float, on_stall: Callable[[], None] = _kill_self,
                 clock: Callable[[], float] = time.monotonic):
        self.stall_limit = stall_limit
        self._on_stall = on_stall
        self._clock = clock
        self._last_beat = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self.fired = False

    def beat(self) -> None:
        self._last_beat = self._clock()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._schedule(loop)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # The beat is a loop callback, so it only runs while the loop is actually turning.
        if self._stop.is_set():
            return
        self.beat()
        loop.call_later(self.stall_limit / 4, self._schedule, loop)

    def _watch(self) -> None:
        while not self._stop.wait(self.stall_limit / 4):
            stalled_for = self._clock() - self._last_beat
            if stalled_for > self.stall_limit:
                self.fired = True
                log.critical("event loop stalled for %.2fs (limit %.2fs): killing the agent so ExaBGP "
                             "closes the session and the VIPs are withdrawn", stalled_for, self.stall_limit)
                self._on_stall()
                return
