"""run_check: hard timeout, latency, expected errors become results, bugs propagate; the plan."""

import asyncio
import errno
import ssl
import textwrap
import time

import pytest

from anycast_ctl.agent.checks import (
    Outcome,
    build_check,
    checks_by_name,
    run_check,
    schedule_checks,
)
from anycast_ctl.agent.checks.exec_ import ExecChecker
from anycast_ctl.agent.checks.outcome import classify_error, one_line
from anycast_ctl.agent.checks.tcp import TcpChecker
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import load_node_config
from anycast_ctl.errors import UserError


class FakeCheck:
    """A probe that sleeps, then returns an outcome or raises."""

    def __init__(self, *, delay=0.0, outcome=None, error=None):
        self.name, self.target = "fake", "fake-target"
        self.delay, self.outcome, self.error = delay, outcome, error

    async def probe(self):
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.outcome


def run(check, timeout=1.0, **kwargs):
    return asyncio.run(run_check(check, timeout, **kwargs))


def test_outcome_becomes_result_with_name_latency_time_and_extra():
    result = run(FakeCheck(delay=0.05, outcome=Outcome.ok("fine", n=3)), now=lambda: 1234.5)
    assert (result.check, result.health, result.detail, result.at, result.extra) == (
        "fake",
        Health.OK,
        "fine",
        1234.5,
        {"n": 3},
    )
    assert 0.05 <= result.latency < 0.5


def test_probe_slower_than_timeout_is_soft_and_returns_at_the_timeout():
    started = time.monotonic()
    result = run(FakeCheck(delay=30, outcome=Outcome.ok("never")), timeout=0.2)
    elapsed = time.monotonic() - started
    assert result.health is Health.SOFT_FAIL
    assert result.detail == "timed out after 0.2s: fake-target"
    assert 0.2 <= result.latency < 0.3
    assert elapsed < 0.5


@pytest.mark.parametrize("error", [KeyError("bug"), ValueError("bug"), AssertionError("bug")])
def test_unexpected_exception_propagates(error):
    with pytest.raises(type(error)):
        run(FakeCheck(error=error))


def test_timeout_error_raised_by_the_probe_itself_is_classified_not_reported_as_our_timeout():
    result = run(FakeCheck(error=TimeoutError(errno.ETIMEDOUT, "Connection timed out")), timeout=5)
    assert result.health is Health.SOFT_FAIL
    assert result.detail == "Connection timed out: fake-target"


def test_expected_error_becomes_result():
    result = run(FakeCheck(error=ConnectionRefusedError(errno.ECONNREFUSED, "refused")))
    assert (result.health, result.detail) == (Health.HARD_FAIL, "connection refused: fake-target")


def test_outer_cancellation_is_not_swallowed():
    async def main():
        task = asyncio.create_task(run_check(FakeCheck(delay=30), 60))
        await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())


def _verify_error():
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "certificate has expired"
    return exc


@pytest.mark.parametrize(
    "error, health, detail",
    [
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "x"),
            Health.HARD_FAIL,
            "connection refused: T",
        ),
        (FileNotFoundError(errno.ENOENT, "x"), Health.HARD_FAIL, "no such file: T"),
        (PermissionError(errno.EACCES, "x"), Health.HARD_FAIL, "permission denied: T"),
        (OSError(errno.EHOSTUNREACH, "x"), Health.HARD_FAIL, "host unreachable: T"),
        (OSError(errno.ENETUNREACH, "x"), Health.HARD_FAIL, "network unreachable: T"),
        (OSError(errno.ENOEXEC, "x"), Health.HARD_FAIL, "not an executable: T"),
        (
            ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
            Health.SOFT_FAIL,
            "Connection reset by peer: T",
        ),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), Health.SOFT_FAIL, "Broken pipe: T"),
        (_verify_error(), Health.SOFT_FAIL, "TLS verification failed: certificate has expired: T"),
        (asyncio.IncompleteReadError(b"", 10), Health.SOFT_FAIL, "connection closed early: T"),
        (
            UserError.single("<x>", "", "not an HTTP/1.x status line"),
            Health.SOFT_FAIL,
            "not an HTTP/1.x status line: T",
        ),
    ],
)
def test_classify_error_table(error, health, detail):
    assert classify_error(error, "T") == Outcome(health, detail)


@pytest.mark.parametrize(
    "error", [KeyError("k"), ValueError("v"), RuntimeError("r"), TypeError("t")]
)
def test_classify_error_leaves_bugs_unclassified(error):
    assert classify_error(error, "T") is None


def test_one_line_strips_control_characters_and_caps_length():
    assert one_line("a\nb\r\x1b[31mc\t") == "a b [31mc"
    assert len(one_line("x" * 500)) == 200


CONFIG = """
node: lb1
bgp:
  local_as: 65101
  router_id: 10.0.0.2
  neighbors: [{address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}]
timing: {interval: 2, timeout: 1}
checks:
  web: {type: tcp, port: 443}
  slowcmd: {type: exec, command: [/bin/true], timeout: 0.3}
  unused: {type: tcp, port: 80}
vips:
  - {address: 192.0.2.10, checks: [web, slowcmd]}
  - {address: 192.0.2.11, checks: [web], timing: {interval: 0.5, timeout: 0.4}}
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    return load_node_config(path)


def test_shared_check_runs_once_at_the_most_demanding_vips_pace(config):
    plans = schedule_checks(config)
    assert list(plans) == ["web", "slowcmd"]  # "unused" is used by no VIP
    web = plans["web"]
    assert (web.interval, web.timeout, web.vips) == (0.5, 0.4, ("192.0.2.10/32", "192.0.2.11/32"))
    slow = plans["slowcmd"]
    assert (slow.interval, slow.timeout, slow.vips) == (2, 0.3, ("192.0.2.10/32",))


def test_checks_by_name_builds_each_used_check_once(config):
    checks = checks_by_name(config)
    assert list(checks) == ["web", "slowcmd"]
    assert isinstance(checks["web"], TcpChecker) and checks["web"].target == "127.0.0.1:443"
    assert isinstance(checks["slowcmd"], ExecChecker) and checks["slowcmd"].argv == ("/bin/true",)
    assert build_check("web", config.checks["web"]).name == "web"
