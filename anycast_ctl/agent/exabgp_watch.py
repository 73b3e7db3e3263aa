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

    def tighten(self) -> None:
        """The agent made its first decisions: ExaBGP must now answer within `limit`."""
        self.current_limit = self.limit

    async def run(self) -> str:
        """Probe and watch until ExaBGP is hung; return why. Returns nothing while ExaBGP's
        pipe is closed (the reader reports that) - the caller cancels this task then."""
        speaker = self.speaker
        while True:
            if self.on_look is not None:
                self.on_look()
            sleep = PROBE_EVERY
            if speaker.alive:
                waited = speaker.unanswered_for()
                prefixes = speaker.unanswered_prefixes()
                reason = verdict(waited, self.current_limit, prefixes)
                if reason is not None:
                    return reason
                quiet = speaker.since_last_write()
                if probe_due(waited, quiet):
                    speaker.probe(PROBE)
                    waited = 0.0  # the probe now waits for its answer
                sleep = next_look(waited, quiet, self.current_limit, prefixes)
            await asyncio.sleep(sleep)
