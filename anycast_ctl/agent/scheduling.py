"""The agent's check scheduling: which checks a tick runs, and HAProxy deaths between ticks.

A mixin of `AgentRuntime` (anycast_ctl/agent/runtime.py), split out to keep both small. Per
tick: the due VIPs' checks, each distinct probe once (observe.Observer); each VIP's combined
health, once per set of checks; then one `_step_all` for all of them. Between ticks, the
Observer's watch on every HAProxy stats socket reports a dead HAProxy, and the VIPs that
depend on it step at once; its listener watch reports a listener closing, and the VIPs whose
checks connect to it run their checks at once (the checks, not the event, decide).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from anycast_ctl.agent import fsm
from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.agent.health import CheckResult, Health
from anycast_ctl.agent.observe import Observer
from anycast_ctl.agent.quiet_ticks import Handover, QuietTicks
from anycast_ctl.config.node import NodeConfig, Vip

log = logging.getLogger(__name__)

# The agent's first rise after it starts runs its checks this many times faster than the
# interval (docs/state-machine.md, "Start-up"): still `rise` good results, each a full probe.
FIRST_RISE_SPEEDUP = 10


class CheckScheduling(QuietTicks):
    # Set by AgentRuntime.
    config: NodeConfig
    vips: dict[str, Vip]
    observer: Observer
    results: dict[str, CheckResult]
    result_since: dict[str, float]
    statuses: dict[str, fsm.VipStatus]
    next_due: dict[str, float]
    metrics: Any
    clock: Callable[[], float]
    _kind: dict[str, int]
    _kind_wants: list[tuple[tuple[str, float], ...]]
    _kind_timing: list[tuple[int, int, int | None]]
    damping: Any  # agent.damping.Damping | None
    failsafe: Any  # agent.failsafe.Failsafe
    _intervals: dict[str, float]
    first_rise: set[str]  # VIPs still in their first rise since the agent started
    # Check names a listener close touched, not yet run again; the task running them.
    _closed_pending: set[str]
    _closed_runner: asyncio.Task | None
    exit_code: int
    stopping: asyncio.Event

    async def _step_all(self, updates: Sequence[tuple[Vip, Health | None]]) -> None:
        raise NotImplementedError

    def _spawn(self, coroutine: Coroutine) -> None:
        raise NotImplementedError

    def _plan_checks(self, config: NodeConfig) -> None:
        """Once per config: each VIP's kind, a small number shared by the VIPs that need the
        same checks (with the same timeouts), combine them alike and have the same rise, fall
        and window.
        A tick then plans, combines and steps per kind, not per VIP."""
        kinds: dict[tuple, int] = {}
        self._kind = {}
        self._kind_wants = []
        self._kind_timing = []
        for vip in config.vips:
            timing = config.timing_for(vip)
            wants = tuple((name, config.check_timeout(name, vip)) for name in vip.checks)
            key = (wants, vip.combine, timing.rise, timing.fall, timing.window)
            if key not in kinds:
                kinds[key] = len(kinds)
                self._kind_wants.append(wants)
                self._kind_timing.append((timing.rise, timing.fall, timing.window))
            self._kind[vip.address] = kinds[key]
        self._intervals = {vip.address: config.timing_for(vip).interval for vip in config.vips}

    async def _check_loop(self) -> None:
        while True:
            now = self.clock()
            due = [vip for vip in self.vips.values() if self.next_due[vip.address] <= now]
            if due:
                # Before the checks: a probe written now is answered while they run.
                self.failsafe.look()
                await self._run_checks(due)
                await self._step_all(self._healths(due))
                self._tick_done(due, now)
            # Readiness once every VIP has decided; systemd's watchdog, fed from this loop.
            longest_sleep = self.failsafe.loop_tick(self.statuses)
            await self._expire_graceful()
            sleep = self._sleep_to_next(now, longest_sleep, self._graceful_deadlines())
            # scheduler wait until the next due tick; quiet ticks run meanwhile (quiet_ticks.py)
            handed = await self._sleep_through_quiet_ticks(sleep)
            if handed is not None:
                await self._end_handed_over(handed)

    async def _end_handed_over(self, handed: Handover) -> None:
        """The rest of a tick that began in a callback and is not quiet."""
        if handed.updates is None:
            assert handed.begun is not None
            for result in (await self.observer.finish(handed.begun)).values():
                self._record(result)
            updates: Sequence[tuple[Vip, Health | None]] = self._healths(handed.due)
        else:
            updates = handed.updates
        await self._step_all(updates)
        self._tick_done(handed.due, handed.now)

    def _tick_done(self, due: list[Vip], now: float) -> None:
        for vip in due:
            self.next_due[vip.address] = now + self._pace(vip.address)

    def _after_tick(self, now: float) -> float | None:
        """A quiet tick's end, as the loop's: the watchdog fed, and the sleep to the next
        tick; None when a graceful or suppression timer is due (the task steps those)."""
        longest_sleep = self.failsafe.loop_tick(self.statuses)
        deadlines = self._graceful_deadlines()
        if deadlines and min(deadlines) <= self.clock():
            return None
        return self._sleep_to_next(now, longest_sleep, deadlines)

    def _sleep_to_next(
        self, now: float, longest_sleep: float | None, deadlines: list[float]
    ) -> float:
        """Seconds to the next due tick or timer; the ExaBGP watch is told when that is."""
        wake = min([*self.next_due.values(), *deadlines], default=now + 1)
        if longest_sleep is not None:
            wake = min(wake, now + longest_sleep)  # long intervals: keep feeding it
        sleep = max(0.0, wake - self.clock())
        self.failsafe.expect_look_at(asyncio.get_running_loop().time() + sleep)
        return sleep

    def _pace(self, address: str) -> float:
        """Seconds to the VIP's next check. After an ExaBGP restart the node is out of every
        FIB until its first rise ends, so that rise is paced fast; any other state (or any
        failure during it) returns to the interval at once."""
        interval = self._intervals[address]
        if address in self.first_rise:
            # INIT too: a VIP whose announce waits for the set-up (runtime._step_all) with rise 1
            if self.statuses[address].state in (fsm.VipState.RISING, fsm.VipState.INIT):
                return interval / FIRST_RISE_SPEEDUP
            self.first_rise.discard(address)
        return interval

    def _health(self, vip: Vip) -> Health:
        return fsm.combine([self.results[name].health for name in vip.checks], vip.combine)

    def _healths(self, vips: list[Vip]) -> list[tuple[Vip, Health]]:
        """Each VIP with its combined health; VIPs with the same checks combine once."""
        seen: dict[int, Health] = {}
        out = []
        for vip in vips:
            key = self._kind[vip.address]
            health = seen.get(key)
            if health is None:
                health = seen[key] = self._health(vip)
            out.append((vip, health))
        return out

    def _timeouts(self, due: list[Vip]) -> dict[str, float]:
        """The checks the due VIPs need, each with the tightest timeout one of them wants."""
        timeouts: dict[str, float] = {}
        for kind in {self._kind[vip.address] for vip in due}:
            for name, t in self._kind_wants[kind]:
                timeouts[name] = min(t, timeouts.get(name, t))
        return timeouts

    async def _run_checks(self, due: list[Vip]) -> None:
        for result in (await self.observer.run(self._timeouts(due))).values():
            self._record(result)

    def _record(self, result: CheckResult) -> None:
        previous = self.results.get(result.check)
        if previous is None or previous.health is not result.health:
            self.result_since[result.check] = result.at
        self.results[result.check] = result
        if self.metrics:
            self.metrics.observe_check(result)

    def _watch(self) -> None:
        retry = min(self.config.timing_for(v).interval for v in self.vips.values())
        self.observer.watch(self._haproxy_down, retry)
        if self.config.events.listeners:
            self.observer.watch_listeners(self._listener_closed)

    def _listener_closed(self, names: set[str]) -> None:
        """A listener that these checks connect to closed: run the VIPs that use them now.

        Out of tick, but the same checks and the same step as a tick: a refused connect is
        the hard failure it always is, and a listener that another socket still serves
        (SO_REUSEPORT, a reload's new process) passes. Closes that come while a run is on
        join one more run after it, never one run each.
        """
        log.info("a listener closed that checks %s connect to: running them now", sorted(names))
        self._closed_pending |= names
        if self._closed_runner is None or self._closed_runner.done():
            self._closed_runner = asyncio.get_running_loop().create_task(
                self._run_closed(), name="listener-closed"
            )
            self._closed_runner.add_done_callback(self._closed_done)

    async def _run_closed(self) -> None:
        while self._closed_pending:
            names, self._closed_pending = self._closed_pending, set()
            hit = [v for v in self.vips.values() if names & set(v.checks)]
            if hit:
                await self._run_checks(hit)
                await self._step_all(self._healths(hit))

    def _closed_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A check crashed (a bug): fatal, as in a tick; run() withdraws everything.
        log.critical(
            "checks run after a listener closed crashed: %r; withdrawing everything and exiting 1",
            task.exception(),
            exc_info=task.exception(),
        )
        self.exit_code = 1
        self.stopping.set()

    def _haproxy_down(self, names: list[str], outcome: Outcome) -> None:
        """HAProxy died between ticks: its checks fail now, and the VIPs that use them step now."""
        for name in names:
            self._record(CheckResult(name, outcome.health, outcome.detail, 0.0, self.clock()))
        hit = [v for v in self.vips.values() if set(names) & set(v.checks)]
        hit = [v for v in hit if all(n in self.results for n in v.checks)]
        if hit:
            self._spawn(self._step_all(self._healths(hit)))

    def _graceful_deadlines(self) -> list[float]:
        """Timer ticks due: graceful-shutdown periods ending, suppressions ending."""
        timers = (fsm.timer_due(s, self.damping) for s in self.statuses.values())
        return [t for t in timers if t is not None]

    async def _expire_graceful(self) -> None:
        now = self.clock()
        expired = [
            (self.vips[address], None)
            for address, status in self.statuses.items()
            if (due := fsm.timer_due(status, self.damping)) is not None and now >= due
        ]
        if expired:
            await self._step_all(expired)
