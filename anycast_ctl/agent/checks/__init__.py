"""Asyncio health checks: build them from the node config and run them with a hard timeout.

    check = build_check("web", config.checks["web"])
    result = await run_check(check, timeout=0.5)      # -> CheckResult, never hangs

A probe returns an `Outcome` or raises. `run_check` turns its own timeout and the expected
I/O errors (refused, missing socket, TLS verification, a peer's bad answer) into results;
any other exception is a bug and propagates, so the agent can die visibly (fail closed).

A check that can begin without the event loop has `probe_now` (`StartsNow`): it puts its
I/O out at once and returns the outcome, or what is left to await. `start_check` uses it: a
connect to a local listener (settled inside `connect()`) then costs no coroutine, no task
and no timer, and HAProxy's question is out before the other checks of the tick run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from anycast_ctl.agent.checks.cert_policy import CertificatePolicyCheck
from anycast_ctl.agent.checks.exec_ import ExecChecker
from anycast_ctl.agent.checks.haproxy import HaproxyChecker, HaproxySource
from anycast_ctl.agent.checks.http import HttpChecker
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
    "build_check",
    "checks_by_name",
    "probe_key",
    "run_check",
    "schedule_checks",
    "start_check",
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
    name: str, spec: node.Check, sources: dict[Path, HaproxySource] | None = None
) -> Check:
    """One runnable check from its config. May read CA files; raises UserError for bad ones.

    HAProxy checks on the same stats socket share the `HaproxySource` kept in `sources`.
    """
    if isinstance(spec, node.HaproxyCheck):
        source = None
        if sources is not None:
            source = sources.setdefault(spec.socket, HaproxySource(spec.socket))
        return HaproxyChecker(name, spec, source)
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
    return await _finish(check, check.probe(), timeout, time.monotonic(), now)


def start_check(
    check: Check, timeout: float, now: Callable[[], float] = time.time
) -> CheckResult | Coroutine[Any, Any, CheckResult]:
    """`run_check`, begun now: the result itself when the probe needed no wait (`probe_now`
    finished it), else the coroutine that ends it within `timeout` of this call. Checks
    without `probe_now` begin when that coroutine is awaited, as with `run_check`."""
    probe_now = getattr(check, "probe_now", None)
    if probe_now is None:
        return run_check(check, timeout, now)
    started = time.monotonic()
    try:
        begun = probe_now()
    except Exception as exc:
        return _result(check, _classified(exc, check.target), started, now)
    if isinstance(begun, Outcome):
        return _result(check, begun, started, now)
    return _finish(check, begun, timeout, started, now)


async def _finish(
    check: Check,
    pending: Awaitable[Outcome],
    timeout: float,
    started: float,
    now: Callable[[], float],
) -> CheckResult:
    deadline = asyncio.timeout(max(0.0, timeout - (time.monotonic() - started)))
    try:
        async with deadline:
            outcome = await pending
    except Exception as exc:
        if isinstance(exc, TimeoutError) and deadline.expired():
            outcome = Outcome.soft(f"timed out after {timeout:g}s: {check.target}")
        else:
            outcome = _classified(exc, check.target)
    return _result(check, outcome, started, now)


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
