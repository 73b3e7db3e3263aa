"""Quiet ticks: the check ticks of a node where nothing changes, run in event-loop callbacks.

A mixin of `CheckScheduling` (agent/scheduling.py). Ten times a second, for the agent's whole
life, a healthy node's tick does the same: look at ExaBGP, begin the checks (a local connect
is over inside `connect()`, HAProxy's question goes out), judge HAProxy's answer, and step
every VIP to the state it already has. Run by the check loop's task, that is four loop
passes (the sleep's timer, the task, the answer, the task again); here it is two, the timer
and the pass that reads HAProxy's answer (`HaproxySource.when_delivered` ends the tick in
that callback; ExaBGP's answer to the probe is handled in the same pass, pushed_lines.py),
and no coroutine is resumed. On a small VM every pass of a loop that slept starts with cold
caches (docs/agent.md, "Footprint").

A tick that is not quiet goes back to the task, which runs it as it runs every tick: a VIP
whose step has an action (a route change, a transition), a probe that must be awaited as a
coroutine (HTTP, TLS, exec, a connect still on), a graceful-shutdown or suppression timer
due, a reload in between. Before anything is committed, so the task's tick is the same tick.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

from anycast_ctl.agent.checks import HaproxySource, Underway
from anycast_ctl.agent.checks.haproxy import HaproxyChecker
from anycast_ctl.agent.health import CheckResult, Health
from anycast_ctl.agent.observe import Begun, Observer
from anycast_ctl.config.node import Vip


@dataclasses.dataclass
class Handover:
    """A tick the task must end: the due VIPs and the tick's start (`clock()`), and either
    the probes begun (to await) or, with their results recorded, the VIPs' step."""

    due: list[Vip]
    now: float
    begun: Begun | None = None
    updates: Sequence[tuple[Vip, Health | None]] | None = None


@dataclasses.dataclass
class _Tick:
    due: list[Vip]
    now: float
    begun: Begun
    observer: Observer
    ended: dict[int, CheckResult] = dataclasses.field(default_factory=dict)  # by position
    timers: list[asyncio.TimerHandle] = dataclasses.field(default_factory=list)

    def let_go(self) -> None:
        for timer in self.timers:
            timer.cancel()
        for started in self.begun.begun:
            if isinstance(started, Underway):
                started.abandon()


class QuietTicks:
    # Set by AgentRuntime and CheckScheduling.
    vips: dict[str, Vip]
    next_due: dict[str, float]
    observer: Observer
    failsafe: Any  # agent.failsafe.Failsafe
    clock: Callable[[], float]
    _handover: asyncio.Future[Handover | None] | None
    _quiet_timer: asyncio.TimerHandle | None
    _quiet_tick_on: _Tick | None

    def _timeouts(self, due: list[Vip]) -> dict[str, float]:
        raise NotImplementedError

    def _record(self, result: CheckResult) -> None:
        raise NotImplementedError

    def _healths(self, vips: list[Vip]) -> list[tuple[Vip, Health]]:
        raise NotImplementedError

    def _step_quietly(self, updates: Sequence[tuple[Vip, Health | None]]) -> bool:
        raise NotImplementedError

    def _tick_done(self, due: list[Vip], now: float) -> None:
        raise NotImplementedError

    def _after_tick(self, now: float) -> float | None:
        raise NotImplementedError

    async def _sleep_through_quiet_ticks(self, sleep: float) -> Handover | None:
        """Sleep `sleep` seconds, then run ticks in callbacks while they are quiet. Returns
        at the first tick that is not: None (the task runs it whole) or what is left of it."""
        loop = asyncio.get_running_loop()
        self._handover = loop.create_future()
        self._quiet_timer = loop.call_later(sleep, self._quiet_tick)
        try:
            return await self._handover
        finally:
            self._quiet_timer.cancel()
            if self._quiet_tick_on is not None:  # cancelled mid-tick: the agent is stopping
                self._quiet_tick_on.let_go()
                self._quiet_tick_on = None
            self._handover = None

    def _hand_over(self, what: Handover | Exception | None) -> None:
        handover, self._quiet_tick_on = self._handover, None
        if handover is None or handover.done():
            return
        if isinstance(what, Exception):  # a bug: raised in the task, fatal as from its tick
            handover.set_exception(what)
        else:
            handover.set_result(what)

    def _quiet_tick(self) -> None:
        """The timer: a tick begins (or goes to the task)."""
        try:
            now = self.clock()
            due = [vip for vip in self.vips.values() if self.next_due[vip.address] <= now]
            if not due:  # a timer of another kind (graceful shutdown, the watchdog)
                self._hand_over(None)
                return
            self.failsafe.look()  # before the checks, as the task's tick
            observer = self.observer
            begun = observer.begin(self._timeouts(due))
            underway = [
                (i, started)
                for i, started in enumerate(begun.begun)
                if isinstance(started, Underway)
            ]
            if not all(isinstance(started.rest, asyncio.Future) for _, started in underway):
                self._hand_over(Handover(due, now, begun=begun))
                return
            tick = self._quiet_tick_on = _Tick(due, now, begun, observer)
            loop = asyncio.get_running_loop()
            sources: set[HaproxySource] = set()
            for i, started in underway:
                assert isinstance(started.rest, asyncio.Future)
                if isinstance(started.check, HaproxyChecker):
                    sources.add(started.check.source)  # no loop pass between answer and tick
                else:
                    started.rest.add_done_callback(functools.partial(self._settled, tick))
                tick.timers.append(
                    loop.call_later(started.time_left(), self._timed_out, tick, i, started)
                )
            for source in sources:
                source.when_delivered(functools.partial(self._settled, tick))
            if not underway:
                self._end(tick)
            else:  # an answer (or error) may have come inside begin(): a missing socket
                self._settled(tick)
        except Exception as exc:
            self._hand_over(exc)

    def _settled(self, tick: _Tick, *_: object) -> None:
        """Some of the tick's futures are done: their results (each once)."""
        if tick is not self._quiet_tick_on:
            return
        try:
            for i, started in enumerate(tick.begun.begun):
                if not isinstance(started, Underway) or i in tick.ended:
                    continue
                rest = started.rest
                assert isinstance(rest, asyncio.Future)
                if not rest.done() or rest.cancelled():
                    continue
                error = rest.exception()
                if error is not None and not isinstance(error, Exception):
                    raise error
                tick.ended[i] = started.ended(error or rest.result())
            self._maybe_end(tick)
        except Exception as exc:
            self._hand_over(exc)

    def _timed_out(self, tick: _Tick, i: int, started: Underway) -> None:
        if tick is not self._quiet_tick_on or i in tick.ended:
            return
        try:
            tick.ended[i] = started.timed_out()
            started.abandon()  # HAProxy's question stays out: the next tick waits for it
            self._maybe_end(tick)
        except Exception as exc:
            self._hand_over(exc)

    def _maybe_end(self, tick: _Tick) -> None:
        if len(tick.ended) + sum(isinstance(b, CheckResult) for b in tick.begun.begun) == len(
            tick.begun.begun
        ):
            for timer in tick.timers:
                timer.cancel()
            self._end(tick)

    def _end(self, tick: _Tick) -> None:
        """Every probe of the tick has its result: record, step, and sleep to the next."""
        self._quiet_tick_on = None
        if tick.observer is not self.observer:  # a reload came between: the task's
            self._hand_over(None)
            return
        ended = [
            started if isinstance(started, CheckResult) else tick.ended[i]
            for i, started in enumerate(tick.begun.begun)
        ]
        for result in tick.begun.by_name(list(ended)).values():
            self._record(result)
        updates = self._healths(tick.due)
        if not self._step_quietly(updates):
            self._hand_over(Handover(tick.due, tick.now, updates=updates))
            return
        self._tick_done(tick.due, tick.now)
        sleep = self._after_tick(tick.now)
        if sleep is None:
            self._hand_over(None)
            return
        self._quiet_timer = asyncio.get_running_loop().call_later(sleep, self._quiet_tick)
