"""begin_check: a probe that needs no wait is a result at once; the rest is awaited within
the timeout counted from the start; errors are classified as run_check classifies them."""

import asyncio
import errno
import time

import pytest

from anycast_ctl.agent.checks import Outcome, Underway, begin_check
from anycast_ctl.agent.health import CheckResult, Health


class StartingCheck:
    """A check with probe_now: an outcome at once, an error at once, or an awaitable."""

    def __init__(self, *, now=None, error=None, rest_delay=None, rest=None):
        self.name, self.target = "fake", "fake-target"
        self.now, self.error, self.rest_delay, self.rest = now, error, rest_delay, rest
        self.begun = 0

    def probe_now(self):
        self.begun += 1
        if self.error is not None:
            raise self.error
        if self.now is not None:
            return self.now
        return self._rest()

    async def _rest(self):
        await asyncio.sleep(self.rest_delay)
        return self.rest

    async def probe(self):
        raise AssertionError("begin_check must use probe_now")


class PlainCheck:
    def __init__(self):
        self.name, self.target = "plain", "plain-target"
        self.started = False

    async def probe(self):
        self.started = True
        return Outcome.ok("plain")


def test_an_outcome_at_once_is_a_result_at_once_with_no_coroutine():
    check = StartingCheck(now=Outcome.ok("connected", rtt=1))
    result = begin_check(check, 1.0, now=lambda: 42.0)
    assert isinstance(result, CheckResult)
    assert (result.check, result.health, result.detail, result.at) == (
        "fake",
        Health.OK,
        "connected",
        42.0,
    )
    assert result.extra == {"rtt": 1} and 0 <= result.latency < 0.1


def test_an_expected_error_at_once_is_classified_at_once():
    check = StartingCheck(error=ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    result = begin_check(check, 1.0)
    assert isinstance(result, CheckResult)
    assert (result.health, result.detail) == (Health.HARD_FAIL, "connection refused: fake-target")


@pytest.mark.parametrize("error", [KeyError("bug"), ValueError("bug")])
def test_a_bug_at_once_propagates(error):
    with pytest.raises(type(error)):
        begin_check(StartingCheck(error=error), 1.0)


def test_the_rest_is_awaited_and_becomes_the_result():
    check = StartingCheck(rest_delay=0.01, rest=Outcome.soft("2/3 servers UP"))

    async def main():
        begun = begin_check(check, 1.0)
        assert isinstance(begun, Underway)
        assert check.begun == 1  # begun by begin_check itself, before any await
        return await begun.finish()

    result = asyncio.run(main())
    assert (result.health, result.detail) == (Health.SOFT_FAIL, "2/3 servers UP")
    assert result.latency >= 0.01


def test_the_timeout_counts_from_the_start_not_from_the_await():
    check = StartingCheck(rest_delay=30, rest=Outcome.ok("never"))

    async def main():
        begun = begin_check(check, 0.2)
        time.sleep(0.1)  # the tick's other checks run before this one is awaited
        started = time.monotonic()
        result = await begun.finish()
        return result, time.monotonic() - started

    result, awaited = asyncio.run(main())
    assert result.detail == "timed out after 0.2s: fake-target"
    assert 0.2 <= result.latency < 0.35
    assert awaited < 0.18


def test_a_check_without_probe_now_begins_when_awaited():
    check = PlainCheck()

    async def main():
        begun = begin_check(check, 1.0)
        assert isinstance(begun, Underway) and not check.started
        return await begun.finish()

    assert asyncio.run(main()).detail == "plain"
