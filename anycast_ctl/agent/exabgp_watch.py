"""Notice an ExaBGP that stopped reading or answering, in well under a second.

A frozen ExaBGP (SIGSTOP, a wedged reactor, a node short of memory) keeps its TCP sessions
open: the routers keep its routes until their hold timer expires (9 s in the lab, 90-180 s in
production). But ExaBGP answers every command we write with `done` or `error`, in order
(exabgp.api.ack, on in what we render). So:

- while a command waits for its answer, its age is the measure;
- while nothing waits, we write a probe when we have written nothing for `PROBE_EVERY`
  seconds: `#`, ExaBGP's comment command, which it answers `done` and otherwise ignores (4.2
  and 5.0 alike). The cadence counts from our writes, not from ExaBGP's answers: an answer
  that comes a few ms late must not cost the watch a second wake-up per probe.

A command's age counts from when ExaBGP could start on it (its write, or the answer to the
command before it), and a command that carries many prefixes gets `PER_PREFIX` more per
prefix: ExaBGP 5.0 takes up to about 1.3 ms a prefix on a loaded 2-core VM (measured with
100-500 prefixes a line), so 1,000 VIPs announced at once are work, not a hang.

When that age is over the limit, ExaBGP is hung; the agent then
has the lifeline guardian kill it, which closes its sessions at once (see lifeline.py).
The limit is loose until the agent's first decisions (a CPU-starved start-up answers slowly)
and tight after `tighten()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

PROBE = "#"  # ExaBGP's comment command: answered `done`, does nothing else
PROBE_EVERY = 0.1  # seconds between probes while no command waits for an answer
# A probe counts as due this much early: the watch wakes PROBE_EVERY after its last write, a
# hair early at times (timer rounding); without the slack such a cycle costs a second wake.
SLACK = 0.01
PER_PREFIX = 0.003  # seconds more per prefix of the command ExaBGP is on (twice the worst seen)
# How late a tick's look may come before the watch's own timer looks instead: half a probe
# interval, so a probe is never more than that late, and a tick a little late (a slow check,
# a busy loop) costs no second wake-up.
TICK_GRACE = PROBE_EVERY / 2


class Answering(Protocol):
    """What the watch needs from the Speaker."""

    alive: bool

    def unanswered_for(self) -> float | None: ...

    def unanswered_prefixes(self) -> int: ...

    def since_last_write(self) -> float | None: ...

    def probe(self, line: str) -> None: ...


def verdict(unanswered_for: float | None, limit: float, prefixes: int = 1) -> str | None:
    """Pure: why ExaBGP counts as hung (None: it does not). `prefixes`: how many the command
    it is on carries; each beyond the first allows `PER_PREFIX` more."""
    if unanswered_for is None:
        return None
    allowed = limit + PER_PREFIX * max(0, prefixes - 1)
    if unanswered_for > allowed:
        size = f" for its {prefixes} prefixes" if prefixes > 1 else ""
        waited = f"{unanswered_for:.2f}s"
        return f"ExaBGP has not answered a command for {waited} (limit {allowed:g}s{size})"
    return None


def probe_due(unanswered_for: float | None, since_last_write: float | None) -> bool:
    """Pure: write a probe when nothing waits for an answer and we have been quiet."""
    return unanswered_for is None and (
        since_last_write is None or since_last_write >= PROBE_EVERY - SLACK
    )


def next_look(
    unanswered_for: float | None, since_last_write: float | None, limit: float, prefixes: int = 1
) -> float:
    """Pure: seconds the watch may sleep. While a command waits: until its limit runs out,
    but never longer than PROBE_EVERY (so the next probe is never late once it is answered).
    While nothing waits: until the next probe is due. The watch never ticks for nothing."""
    if unanswered_for is not None:
        allowed = limit + PER_PREFIX * max(0, prefixes - 1)
        # just past the limit: `verdict` wants strictly over it
        return min(PROBE_EVERY, max(0.0, allowed - unanswered_for) + 0.001)
    if since_last_write is None:
        return PROBE_EVERY
    return min(PROBE_EVERY, max(0.0, PROBE_EVERY - SLACK - since_last_write))


class ExabgpWatch:
    """Looks at ExaBGP's answers: at the check loop's ticks when it says when they come
    (`look`, `expect_look_at`), else on a timer of its own.

    Every look is the same synchronous step: the heartbeat (`on_look`), the verdict, a probe
    if one is due. A probe written at a tick goes out with the tick's checks, so its answer
    comes while the agent waits for theirs: one wake-up a tick instead of one more for the
    probe's timer (each wake-up of a sleeping loop costs ~0.1-0.2 ms of CPU on a 2-core VM,
    measured; docs/agent.md, "Footprint"). The timer is a backstop: it fires only when no
    tick looks in time, and at once when a waiting command's limit runs out before the next
    tick, so a hang is judged exactly as late as before.
    """

    def __init__(
        self,
        speaker: Answering,
        *,
        limit: float,
        startup_limit: float | None = None,
        on_look: Callable[[], object] | None = None,
    ):
        """`on_look`: called at every look (at least every PROBE_EVERY): the lifeline's
        heartbeat rides on this wake-up instead of a timer of its own."""
        if limit <= 0:
            raise ValueError(f"limit must be > 0, not {limit}")
        self.speaker = speaker
        self.on_look = on_look
        self.limit = limit
        self.current_limit = max(limit, startup_limit or limit)
        self.backstop_looks = 0  # looks the timer made because no tick came in time
        self._hung: asyncio.Future[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backstop: asyncio.TimerHandle | None = None
        self._needed_at = 0.0  # loop time by which the next look is wanted
        self._limit_at: float | None = None  # loop time a waiting command's limit runs out

    def tighten(self) -> None:
        """The agent made its first decisions: ExaBGP must now answer within `limit`."""
        self.current_limit = self.limit

    async def run(self) -> str:
        """Probe and watch until ExaBGP is hung; return why. Returns nothing while ExaBGP's
        pipe is closed (the reader reports that) - the caller cancels this task then."""
        self._loop = asyncio.get_running_loop()
        self._hung = self._loop.create_future()
        try:
            self._look(backstop=False, arm=True)
            return await self._hung
        finally:
            if self._backstop is not None:
                self._backstop.cancel()
            self._hung = self._backstop = None

    def look(self) -> None:
        """A look from the check loop's tick (nothing while `run` is not running). The timer
        is left as the tick's `expect_look_at` set it (a grace past this tick) until the
        tick sets it again: one timer a tick, not two."""
        self._look(backstop=False, arm=False)

    def expect_look_at(self, when: float) -> None:
        """The check loop will look again at loop time `when`: the backstop waits for that
        look (plus a grace) unless it would come too late for the next probe or a limit."""
        if self._hung is None or self._hung.done():
            return
        at = when + TICK_GRACE if when <= self._needed_at + TICK_GRACE else self._needed_at
        if self._limit_at is not None:
            at = min(at, self._limit_at)
        self._arm(at)

    def _look(self, backstop: bool, arm: bool) -> None:
        if self._hung is None or self._hung.done() or self._loop is None:
            return
        self.backstop_looks += backstop
        if self.on_look is not None:
            self.on_look()
        speaker = self.speaker
        sleep = PROBE_EVERY
        self._limit_at = None
        now = self._loop.time()
        if speaker.alive:
            waited = speaker.unanswered_for()
            prefixes = speaker.unanswered_prefixes()
            reason = verdict(waited, self.current_limit, prefixes)
            if reason is not None:
                self._hung.set_result(reason)
                return
            quiet = speaker.since_last_write()
            if probe_due(waited, quiet):
                speaker.probe(PROBE)
                waited = 0.0  # the probe now waits for its answer
                prefixes = 1
            sleep = next_look(waited, quiet, self.current_limit, prefixes)
            if waited is not None:
                allowed = self.current_limit + PER_PREFIX * max(0, prefixes - 1)
                self._limit_at = now + max(0.0, allowed - waited) + 0.001
        self._needed_at = now + sleep
        if arm:
            self._arm(self._needed_at)

    def _arm(self, at: float) -> None:
        assert self._loop is not None
        if self._backstop is not None:
            self._backstop.cancel()  # a cancelled timer never wakes the loop
        self._backstop = self._loop.call_at(at, self._look, True, True)
