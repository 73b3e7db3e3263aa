"""Asyncio health checks: build them from the node config and run them with a hard timeout.

    check = build_check("web", config.checks["web"])
    result = await run_check(check, timeout=0.5)      # -> CheckResult, never hangs

A probe returns an `Outcome` or raises. `run_check` turns its own timeout and the expected
I/O errors (refused, missing socket, TLS verification, a peer's bad answer) into results;
any other exception is a bug and propagates, so the agent can die visibly (fail closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

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
]


class Check(Protocol):
    name: str  # the check's name in the node config
    target: str  # what it probes, for details: "127.0.0.1:80", "/run/haproxy.sock"

    async def probe(self) -> Outcome: ...


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
    started = time.monotonic()
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            outcome = await check.probe()
    except Exception as exc:
        if isinstance(exc, TimeoutError) and deadline.expired():
            outcome = Outcome.soft(f"timed out after {timeout:g}s: {check.target}")
        else:
            classified = classify_error(exc, check.target)
            if classified is None:
                raise
            outcome = classified
    latency = time.monotonic() - started
    return CheckResult(
        check.name, outcome.health, outcome.detail, latency, now(), dict(outcome.extra)
    )
