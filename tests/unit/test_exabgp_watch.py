"""The ExaBGP watch against an in-memory ExaBGP that answers, then stops answering."""

from __future__ import annotations

import asyncio
import io
import time

import pytest

from anycast_ctl.agent.exabgp_watch import (
    PER_PREFIX,
    PROBE,
    PROBE_EVERY,
    SLACK,
    ExabgpWatch,
    next_look,
    probe_due,
    verdict,
)
from anycast_ctl.agent.speaker import Speaker


@pytest.mark.parametrize(
    "waited, limit, hung",
    [(None, 0.4, False), (0.0, 0.4, False), (0.4, 0.4, False), (0.41, 0.4, True), (9, 10, False)],
)
def test_verdict(waited, limit, hung):
    assert (verdict(waited, limit) is not None) is hung


def test_a_command_with_many_prefixes_is_allowed_time_for_each():
    limit, prefixes = 0.4, 100
    allowed = limit + PER_PREFIX * (prefixes - 1)
    assert verdict(allowed - 0.01, limit, prefixes) is None
    reason = verdict(allowed + 0.01, limit, prefixes)
    assert reason is not None and "100 prefixes" in reason
    assert verdict(limit + 0.01, limit, 1) is not None  # a probe gets no more than the limit


@pytest.mark.parametrize(
    "waited, quiet, due",
    [
        (None, None, True),  # we never wrote: ask
        (None, PROBE_EVERY, True),
        (None, PROBE_EVERY / 2, False),  # we just wrote something (and it was answered)
        (0.05, 1.0, False),  # a command already waits: its age is the measure
    ],
)
def test_probe_due(waited, quiet, due):
    assert probe_due(waited, quiet) is due


@pytest.mark.parametrize(
    "waited, quiet, limit, prefixes, sleep",
    [
        (None, None, 0.4, 0, PROBE_EVERY),  # we never wrote: look again a probe away
        (None, 0.0, 0.4, 0, PROBE_EVERY - SLACK),  # we just wrote: the next probe's time
        (None, 0.05, 0.4, 0, PROBE_EVERY - SLACK - 0.05),
        (None, 5.0, 0.4, 0, 0.0),  # a probe is overdue
        (0.0, 0.0, 0.4, 1, PROBE_EVERY),  # a command waits: never sleep past a probe's time
        (0.35, 0.0, 0.4, 1, 0.051),  # ...nor past its limit (just over: verdict is strict)
        (0.5, 0.0, 0.4, 1, 0.001),  # over the limit already: look at once
        (0.4, 0.0, 0.4, 11, PER_PREFIX * 10 + 0.001),  # a big command: more time
    ],
)
def test_next_look_sleeps_until_something_is_due(waited, quiet, limit, prefixes, sleep):
    assert next_look(waited, quiet, limit, prefixes) == pytest.approx(min(PROBE_EVERY, sleep))


def test_the_probe_is_exabgps_comment_command():
    # ExaBGP picks the command by substring (docs/exabgp.md); `#` must be exactly the comment
    # command, which answers `done` and does nothing else, in 4.2 and 5.0 alike.
    functions = pytest.importorskip("exabgp.reactor.api.command").Command.functions
    hits = [r for r in functions if r == PROBE or PROBE.endswith(" " + r) or r + " " in PROBE]
    assert hits == ["#"]


class Exabgp:
    """ExaBGP's side: answers every line `done` until frozen."""

    def __init__(self):
        self.to_agent = asyncio.StreamReader()
        self.lines: list[str] = []
        self.frozen = False

    def write(self, text: str):
        for line in text.splitlines():
            self.lines.append(line)
            if not self.frozen:
                self.to_agent.feed_data(b"done\n")

    def flush(self):
        pass


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_an_answering_exabgp_is_probed_and_never_called_hung():
    async def body():
        exabgp = Exabgp()
        speaker = Speaker(exabgp.to_agent, exabgp)
        reader = asyncio.create_task(speaker.run_reader())
        watch = asyncio.create_task(ExabgpWatch(speaker, limit=0.2).run())
        await asyncio.sleep(0.6)
        assert not watch.done()
        assert exabgp.lines.count(PROBE) >= 3  # probed about every PROBE_EVERY
        watch.cancel()
        reader.cancel()

    run(body())


# Answers at once, and each 30 ms late (more than SLACK): the next probe is due PROBE_EVERY
# after the last one was written either way, so the watch wakes once a probe, not twice.
@pytest.mark.parametrize("late", [0.0, 0.03])
def test_the_watch_looks_once_a_probe_and_calls_on_look_at_every_look(late):
    async def body():
        exabgp = LateExabgp(late) if late else Exabgp()
        speaker = Speaker(exabgp.to_agent, exabgp)
        reader = asyncio.create_task(speaker.run_reader())
        looks: list[float] = []
        watch = ExabgpWatch(speaker, limit=0.4, on_look=lambda: looks.append(time.monotonic()))
        task = asyncio.create_task(watch.run())
        seconds = 1.0
        await asyncio.sleep(seconds)
        assert not task.done()
        gaps = [b - a for a, b in zip(looks, looks[1:], strict=False)]
        # the lifeline's beats ride on the looks: never much more than a probe apart...
        assert max(gaps) < PROBE_EVERY + 0.05, gaps
        # ...and no looks for nothing: about one per probe, not a tick every 50 ms
        assert len(looks) <= seconds / (PROBE_EVERY - SLACK) + 2, len(looks)
        assert exabgp.lines.count(PROBE) >= seconds / PROBE_EVERY - 2
        task.cancel()
        reader.cancel()

    run(body())


def test_an_exabgp_that_stops_answering_is_called_hung_just_after_the_limit():
    async def body():
        exabgp = Exabgp()
        speaker = Speaker(exabgp.to_agent, exabgp)
        reader = asyncio.create_task(speaker.run_reader())
        watch = ExabgpWatch(speaker, limit=0.2, startup_limit=5.0)
        watch.tighten()
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.3)
        exabgp.frozen = True
        frozen_at = time.monotonic()
        reason = await task
        took = time.monotonic() - frozen_at
        assert "has not answered" in reason
        assert 0.2 <= took < 0.2 + PROBE_EVERY + 0.15, took
        reader.cancel()

    run(body())


def test_the_startup_limit_applies_until_tighten():
    async def body():
        exabgp = Exabgp()
        exabgp.frozen = True
        speaker = Speaker(exabgp.to_agent, exabgp)
        reader = asyncio.create_task(speaker.run_reader())
        watch = ExabgpWatch(speaker, limit=0.2, startup_limit=1.0)
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.5)
        assert not task.done()  # slow at start-up is not hung
        watch.tighten()
        assert "has not answered" in await asyncio.wait_for(task, 1.0)
        reader.cancel()

    run(body())


class LateExabgp(Exabgp):
    """ExaBGP's side: answers every line `seconds` after it came (a busy reactor)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def write(self, text: str):
        loop = asyncio.get_running_loop()
        for line in text.splitlines():
            self.lines.append(line)
            loop.call_later(self.seconds, self.to_agent.feed_data, b"done\n")


class SlowExabgp(Exabgp):
    """ExaBGP's side: answers each line `seconds` after it answered the one before."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.queued = 0

    def write(self, text: str):
        loop = asyncio.get_running_loop()
        for line in text.splitlines():
            self.lines.append(line)
            self.queued += 1
            loop.call_later(self.seconds * self.queued, self.to_agent.feed_data, b"done\n")


def test_a_burst_answered_line_by_line_is_not_called_hung():
    # Five commands answered 0.15 s apart: the last waits 0.75 s in all, but ExaBGP answers
    # something every 0.15 s, within the 0.3 s limit: working, not hung.
    async def body():
        exabgp = SlowExabgp(0.15)
        speaker = Speaker(exabgp.to_agent, exabgp)
        reader = asyncio.create_task(speaker.run_reader())
        watch = ExabgpWatch(speaker, limit=0.3)
        task = asyncio.create_task(watch.run())
        burst = [f"withdraw route 192.0.2.{i}/32" for i in range(5)]
        assert await speaker.send_many(burst) == [True] * 5
        assert not task.done()
        task.cancel()
        reader.cancel()

    run(body())


def test_the_age_of_a_waiting_command_counts_from_the_answer_before_it():
    async def body():
        clock = [100.0]
        exabgp = Exabgp()
        exabgp.frozen = True
        speaker = Speaker(exabgp.to_agent, exabgp, clock=lambda: clock[0])
        reader = asyncio.create_task(speaker.run_reader())
        sending = asyncio.create_task(
            speaker.send_many(
                [
                    "withdraw route 192.0.2.1/32",
                    "withdraw attributes nlri " + " ".join(f"192.0.2.{i}/32" for i in range(2, 12)),
                ]
            )
        )
        await asyncio.sleep(0.01)
        clock[0] = 101.0
        assert speaker.unanswered_for() == 1.0 and speaker.unanswered_prefixes() == 1
        exabgp.to_agent.feed_data(b"done\n")  # the first answered at 101.0
        await asyncio.sleep(0.01)
        clock[0] = 101.25
        assert speaker.unanswered_for() == 0.25 and speaker.unanswered_prefixes() == 10
        exabgp.to_agent.feed_data(b"done\n")
        assert await sending == [True, True]
        assert speaker.unanswered_for() is None and speaker.unanswered_prefixes() == 0
        reader.cancel()

    run(body())


def test_give_up_fails_waiting_commands_at_once():
    async def body():
        exabgp = Exabgp()
        exabgp.frozen = True
        speaker = Speaker(exabgp.to_agent, io.StringIO())
        sending = asyncio.create_task(speaker.send("withdraw route 192.0.2.10/32"))
        await asyncio.sleep(0.05)
        assert speaker.unanswered_for() is not None
        speaker.give_up()
        assert await asyncio.wait_for(sending, 0.5) is False
        assert not speaker.alive and await speaker.send("withdraw route 192.0.2.10/32") is False

    run(body())


async def ticking(watch: ExabgpWatch, every: float, stop: asyncio.Event) -> None:
    """A check loop's part: look at each tick, and say when the next one comes."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        watch.look()
        watch.expect_look_at(loop.time() + every)
        await asyncio.sleep(every)


def watched_with_ticks(watch: ExabgpWatch):
    """The watch running, and a check loop's ticks every PROBE_EVERY until `stop` is set."""
    stop = asyncio.Event()
    return (
        asyncio.create_task(watch.run()),
        stop,
        asyncio.create_task(ticking(watch, PROBE_EVERY, stop)),
    )


def test_ticks_that_look_on_time_carry_every_probe_and_the_timer_never_fires():
    async def body():
        exabgp = Exabgp()
        speaker = Speaker(exabgp.to_agent, exabgp)
        reader = asyncio.create_task(speaker.run_reader())
        watch = ExabgpWatch(speaker, limit=0.4)
        task, stop, ticks = watched_with_ticks(watch)
        await asyncio.sleep(1.0)
        stop.set()
        await ticks
        assert not task.done()
        assert watch.backstop_looks == 0, watch.backstop_looks
        assert exabgp.lines.count(PROBE) >= 1.0 / PROBE_EVERY - 2
        task.cancel()
        reader.cancel()

    run(body())


def test_ticks_that_stop_leave_the_watch_to_its_own_timer():
    async def body():
        exabgp = Exabgp()
        speaker = Speaker(exabgp.to_agent, exabgp)
        reader = asyncio.create_task(speaker.run_reader())
        looks: list[float] = []
        watch = ExabgpWatch(speaker, limit=0.4, on_look=lambda: looks.append(time.monotonic()))
        task, stop, ticks = watched_with_ticks(watch)
        await asyncio.sleep(0.3)
        stop.set()  # the check loop stops looking (a slow check, a stuck loop)
        await ticks
        before = exabgp.lines.count(PROBE)
        await asyncio.sleep(0.6)
        gaps = [b - a for a, b in zip(looks, looks[1:], strict=False)]
        assert watch.backstop_looks >= 3
        assert exabgp.lines.count(PROBE) >= before + 3  # still probed...
        assert max(gaps) < PROBE_EVERY + 0.05 + 0.05, gaps  # ...and beats never far apart
        task.cancel()
        reader.cancel()

    run(body())


def test_a_hang_seen_only_by_tick_looks_is_still_judged_just_after_the_limit():
    async def body():
        exabgp = Exabgp()
        speaker = Speaker(exabgp.to_agent, exabgp)
        reader = asyncio.create_task(speaker.run_reader())
        watch = ExabgpWatch(speaker, limit=0.25)
        task, stop, ticks = watched_with_ticks(watch)
        await asyncio.sleep(0.3)
        timer_looks = watch.backstop_looks
        exabgp.frozen = True
        frozen_at = time.monotonic()
        reason = await task
        took = time.monotonic() - frozen_at
        stop.set()
        await ticks
        assert "has not answered" in reason
        assert 0.25 <= took < 0.25 + PROBE_EVERY + 0.15, took
        # the limit (0.25 s) runs out between two ticks (0.1 s apart): the timer judges it
        # then, not the tick after
        assert watch.backstop_looks == timer_looks + 1
        reader.cancel()

    run(body())
