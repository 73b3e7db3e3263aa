"""One observation per source per tick: the checks a tick needs, each distinct probe once.

Check names that probe the same thing the same way (`checks.probe_key`) share one run, and
HAProxy checks on one stats socket share one read of it (`checks.haproxy.HaproxySource`), so
the cost of a tick grows with distinct sources, not with VIPs or check names.
Between ticks, every HAProxy socket is watched: a dead HAProxy is reported the moment its
connection closes (`on_down`), not at the next tick. So is every listener an address-and-port
check connects to (tcp, tls, http): the kernel's word that it closed (agent/sockdiag.py) names
the checks to run now (`on_closed`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from anycast_ctl.agent.checks import (
    Check,
    HaproxySource,
    Underway,
    begin_check,
    build_check,
    probe_key,
    with_policy,
)
from anycast_ctl.agent.checks.haproxy import HaproxyChecker
from anycast_ctl.agent.checks.listening import ListenerTable
from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.agent.concurrently import gather_inline
from anycast_ctl.agent.health import CheckResult
from anycast_ctl.agent.listener_events import watched_endpoints
from anycast_ctl.agent.sockdiag import ListenerWatch
from anycast_ctl.config.node import NodeConfig

T = TypeVar("T")


class CheckCrashed(RuntimeError):
    """A check raised something it should have reported as a result: a bug, and fatal."""


class Observer:
    def __init__(self, config: NodeConfig) -> None:
        used = {name for vip in config.vips for name in vip.checks}
        self.sources: dict[Path, HaproxySource] = {}
        self.listener_table = ListenerTable()
        self.checks: dict[str, Check] = {
            name: with_policy(
                build_check(name, spec, self.sources, self.listener_table), spec, config
            )
            for name, spec in config.checks.items()
            if name in used
        }
        self._keys = {name: probe_key(config.checks[name]) for name in self.checks}
        self.probes = 0  # probes run, for tests and benchmarks
        self._watches: list[asyncio.Task] = []  # one per HAProxy socket
        self.endpoints = watched_endpoints({name: config.checks[name] for name in self.checks})
        self.listeners: ListenerWatch | None = None

    async def run(self, timeouts: dict[str, float]) -> dict[str, CheckResult]:
        """Results for the check names in `timeouts` (name -> the tightest timeout wanted)."""
        return await self.finish(self.begin(timeouts))

    def begin(self, timeouts: dict[str, float]) -> Begun:
        """`run`'s first half: every probe begun now, each distinct one once."""
        sharing: dict[str, list[str]] = {}
        for name in timeouts:
            sharing.setdefault(self._keys[name], []).append(name)
        # HAProxy's questions last: a connect to its listener wakes HAProxy, and a question
        # to an awake HAProxy costs us ~5x less (send and recv: 80 -> 17 us and 57 -> 13 us
        # a tick, cProfile of the agent in bench_footprint). Its answer is the one awaited.
        groups = sorted(sharing.values(), key=self._asks_haproxy)
        self.probes += len(groups)
        begun: list[CheckResult | Underway] = []
        try:
            for g in groups:
                begun.append(begin_check(self.checks[g[0]], min(timeouts[n] for n in g)))
        except Exception as exc:
            for started in begun:
                if isinstance(started, Underway):
                    started.abandon()
            raise CheckCrashed(f"check {g[0]!r} crashed: {exc!r}") from exc
        return Begun(groups, begun)

    async def finish(self, begun: Begun) -> dict[str, CheckResult]:
        """`run`'s second half: the probes still underway awaited, each within its timeout."""
        waiting = [started.finish() for started in begun.begun if isinstance(started, Underway)]
        finished = iter(await gather_inline(waiting) if waiting else ())
        return begun.by_name(
            [s if isinstance(s, CheckResult) else next(finished) for s in begun.begun]
        )

    def _asks_haproxy(self, names: list[str]) -> bool:
        return isinstance(self.checks[names[0]], HaproxyChecker)

    def using(self, source: HaproxySource) -> list[str]:
        """The check names that read `source`."""
        return [
            name
            for name, check in self.checks.items()
            if isinstance(check, HaproxyChecker) and check.source is source
        ]

    def watch(self, on_down: Callable[[list[str], Outcome], object], retry: float) -> None:
        """Watch each HAProxy socket until `stop()`; a death calls `on_down(names, outcome)`."""
        self.stop()
        loop = asyncio.get_running_loop()

        def reporter(source: HaproxySource) -> Callable[[Outcome], object]:
            return lambda outcome: on_down(self.using(source), outcome)

        self._watches = [
            loop.create_task(source.watch(reporter(source), retry), name="haproxy-watch")
            for source in self.sources.values()
        ]

    def watch_listeners(self, on_closed: Callable[[set[str]], object]) -> None:
        """Until `stop()`: `on_closed(check names)` when a listener those checks connect to
        closes. Nothing to watch, or the kernel refuses (logged once): the ticks alone."""
        if self.listeners is not None:
            self.listeners.stop()
            self.listeners = None
        if self.endpoints:
            watch = ListenerWatch(self.endpoints, on_closed)
            if watch.start():
                self.listeners = watch

    @property
    def watching(self) -> bool:
        return bool(self._watches) or self.listeners is not None

    def stop(self) -> None:
        for task in self._watches:
            task.cancel()
        self._watches = []
        if self.listeners is not None:
            self.listeners.stop()
            self.listeners = None

    def close(self) -> None:
        """Done with (a reload's old observer): the watches stopped, the netlink socket of the
        `listening` checks closed, not left to a garbage collector the agent turns off."""
        self.stop()
        self.listener_table.close()


@dataclasses.dataclass
class Begun:
    """The probes of one run, begun: for each group of check names that share a probe, its
    result already, or the probe underway."""

    groups: list[list[str]]
    begun: list[CheckResult | Underway]

    def by_name(self, ended: list[CheckResult | BaseException]) -> dict[str, CheckResult]:
        """Every check name's result, from each group's (a crashed probe raises)."""
        results: dict[str, CheckResult] = {}
        for names, result in zip(self.groups, ended, strict=True):
            if isinstance(result, BaseException):
                raise CheckCrashed(f"check {names[0]!r} crashed: {result!r}") from result
            for name in names:
                results[name] = result if name == result.check else _renamed(result, name)
        return results


def _renamed(result: CheckResult, name: str) -> CheckResult:
    return dataclasses.replace(result, check=name, extra=dict(result.extra))
