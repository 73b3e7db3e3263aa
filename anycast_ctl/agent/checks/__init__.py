"""Asyncio health checks: build them from the node config and run them with a hard timeout.

    check = build_check("web", config.checks["web"])
    result = await run_check(check, timeout=0.5)      # -> CheckResult, never hangs

A probe returns an `Outcome` or raises. `run_check` turns its own timeout and the expected
I/O errors (refused, missing socket, TLS verification, a peer's bad answer) into results;
any other exception is a bug and propagates, so the agent can die visibly (fail closed).

A check that can begin without the event loop has `probe_now` (`StartsNow`): it puts its
I/O out at once and returns the outcome, or what is left to await. `begin_check` uses it: a
connect to a local listener (settled inside `connect()`) then costs no coroutine, no task
and no timer, and HAProxy's question is out before the other checks of the tick run.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from anycast_ctl.agent.checks.cert_policy import CertificatePolicyCheck
from anycast_ctl.agent.checks.exec_ import ExecChecker
from anycast_ctl.agent.checks.haproxy import HaproxyChecker, HaproxySource
from anycast_ctl.agent.checks.http import HttpChecker
from anycast_ctl.agent.checks.listening import ListenerTable, ListeningChecker
from anycast_ctl.agent.checks.outcome import Outcome, classify_error
from anycast_ctl.agent.checks.plan import CheckSchedule, schedule_checks
from anycast_ctl.agent.checks.tcp import TcpChecker
from anycast_ctl.agent.checks.tls import TlsChecker
from anycast_ctl.agent.health import CheckResult
from anycast_ctl.config import node

__all__ = [
    "Check",
    "CheckSchedule",
    "HaproxySource",
    "Outcome",
    "Underway",
    "begin_check",
    "build_check",
    "checks_by_name",
    "probe_key",
    "run_check",
    "schedule_checks",
]


class Check(Protocol):
    name: str  # the check's name in the node config
    target: str  # what it probes, for details: "127.0.0.1:80", "/run/haproxy.sock"

    async def probe(self) -> Outcome: ...


class StartsNow(Protocol):
    def probe_now(self) -> Outcome | Awaitable[Outcome]:
        """Begin the probe now (raises like `probe`): its outcome if it needed no wait, else
        the awaitable that ends it. `probe()` is the same probe, awaited whole."""
        ...


_CHECKERS = {
    node.TcpCheck: TcpChecker,
    node.HttpCheck: HttpChecker,
    node.TlsCheck: TlsChecker,
    node.HaproxyCheck: HaproxyChecker,
    node.ExecCheck: ExecChecker,
}


def build_check(
    name: str,
    spec: node.Check,
    sources: dict[Path, HaproxySource] | None = None,
    listeners: ListenerTable | None = None,
) -> Check:
    """One runnable check from its config. May read CA files; raises UserError for bad ones.

    HAProxy checks on the same stats socket share the `HaproxySource` kept in `sources`;
    `listening` checks given `listeners` share its netlink socket.
    """
    if isinstance(spec, node.HaproxyCheck):
        source = None
        if sources is not None:
            source = sources.setdefault(spec.socket, HaproxySource(spec.socket))
        return HaproxyChecker(name, spec, source)
    if isinstance(spec, node.ListeningCheck):
        return ListeningChecker(name, spec, listeners)
    return _CHECKERS[type(spec)](name, spec)


def checks_by_name(config: node.NodeConfig) -> dict[str, Check]:
    """Each check some VIP uses, built once, so VIPs that share a check share its runs."""
    sources: dict[Path, HaproxySource] = {}
    built = {
        name: build_check(name, config.checks[name], sources) for name in schedule_checks(config)
    }
    return {name: with_policy(check, config.checks[name], config) for name, check in built.items()}


def with_policy(check: Check, spec: node.Check, config: node.NodeConfig) -> Check:
    """The node's certificate-expiry policy around a TLS check; other checks as they are."""
    if isinstance(spec, node.TlsCheck):
        return CertificatePolicyCheck(check, config.node, config.certificates)
    return check


def probe_key(spec: node.Check) -> str:
    """Equal for checks that probe the same thing the same way (the timeout aside)."""
    return spec.model_dump_json(exclude={"timeout"})


async def run_check(
    check: Check, timeout: float, now: Callable[[], float] = time.time
) -> CheckResult:
    """Probe once; never takes (much) longer than `timeout` seconds."""
    return await Underway(check, check.probe(), timeout, time.monotonic(), now).finish()


def begin_check(
    check: Check, timeout: float, now: Callable[[], float] = time.time
) -> CheckResult | Underway:
    """`run_check`, begun now: the result itself when the probe needed no wait (`probe_now`
    finished it), else the probe underway, to end within `timeout` of this call
    (`Underway.finish`). Checks without `probe_now` begin when that is awaited."""
    probe_now = getattr(check, "probe_now", None)
    if probe_now is None:
        return Underway(check, check.probe(), timeout, time.monotonic(), now)
    started = time.monotonic()
    try:
        begun = probe_now()
    except Exception as exc:
        return _result(check, _classified(exc, check.target), started, now)
    if isinstance(begun, Outcome):
        return _result(check, begun, started, now)
    return Underway(check, begun, timeout, started, now)


@dataclass
class Underway:
    """A probe begun and not over: `rest` is the I/O left to await (an `asyncio.Future` for
    HAProxy's answer, which a caller may also follow by callback: `ended`, `timed_out`)."""

    check: Check
    rest: Awaitable[Outcome]
    timeout: float
    started: float  # time.monotonic() when the probe began
    now: Callable[[], float]

    def time_left(self) -> float:
        return max(0.0, self.timeout - (time.monotonic() - self.started))

    async def finish(self) -> CheckResult:
        """Await the rest within what is left of the timeout."""
        deadline = asyncio.timeout(self.time_left())
        try:
            async with deadline:
                outcome = await self.rest
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                return self.timed_out()
            return self.ended(exc)
        return self.ended(outcome)

    def ended(self, outcome: Outcome | Exception) -> CheckResult:
        """The result of the rest's outcome or error; an unexpected error (a bug) raises."""
        if isinstance(outcome, Exception):
            outcome = _classified(outcome, self.check.target)
        return _result(self.check, outcome, self.started, self.now)

    def timed_out(self) -> CheckResult:
        detail = f"timed out after {self.timeout:g}s: {self.check.target}"
        return _result(self.check, Outcome.soft(detail), self.started, self.now)

    def abandon(self) -> None:
        """Never to be awaited: let go of the rest (no never-awaited coroutine left)."""
        if isinstance(self.rest, asyncio.Future):
            self.rest.cancel()
        elif inspect.iscoroutine(self.rest):
            self.rest.close()


def _classified(exc: Exception, target: str) -> Outcome:
    """The outcome of an expected I/O error; any other exception is a bug: re-raised."""
    outcome = classify_error(exc, target)
    if outcome is None:
        raise exc
    return outcome


def _result(
    check: Check, outcome: Outcome, started: float, now: Callable[[], float]
) -> CheckResult:
    latency = time.monotonic() - started
    return CheckResult(
        check.name, outcome.health, outcome.detail, latency, now(), dict(outcome.extra)
    )
