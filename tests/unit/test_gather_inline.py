"""gather_inline: asyncio.gather(return_exceptions=True) with the first coroutine inline."""

from __future__ import annotations

import asyncio

import pytest

from anycast_ctl.agent.concurrently import gather_inline


async def value(x, delay=0.0):
    if delay:
        await asyncio.sleep(delay)
    return x


async def fail(delay=0.0):
    if delay:
        await asyncio.sleep(delay)
    raise OSError("refused")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_results_come_in_order_whichever_finishes_first():
    results = run(gather_inline([value("a", 0.03), value("b"), value("c", 0.01)]))
    assert results == ["a", "b", "c"]


def test_exceptions_are_results_as_with_return_exceptions():
    results = run(gather_inline([fail(), value(1), fail(0.01)]))
    assert isinstance(results[0], OSError) and results[1] == 1
    assert isinstance(results[2], OSError)


def test_nothing_to_run_is_an_empty_list():
    assert run(gather_inline([])) == []


def test_the_first_coroutine_runs_in_the_callers_task_and_starts_first():
    order = []

    async def note(name):
        order.append((name, asyncio.current_task()))
        return name

    async def body():
        me = asyncio.current_task()
        await gather_inline([note("first"), note("second")])
        return me

    me = run(body())
    assert [name for name, _ in order] == ["first", "second"]
    assert order[0][1] is me and order[1][1] is not me


def test_cancelling_the_caller_cancels_every_coroutine():
    started = []

    async def forever(name):
        started.append(name)
        await asyncio.sleep(60)

    async def body():
        caller = asyncio.ensure_future(gather_inline([forever("a"), forever("b")]))
        await asyncio.sleep(0.05)
        helpers = [t for t in asyncio.all_tasks() if t.get_coro().__name__ == "forever"]
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.sleep(0)
        return helpers

    helpers = run(body())
    assert sorted(started) == ["a", "b"]  # "a" inline in the caller's task, "b" in its own
    assert len(helpers) == 1 and helpers[0].cancelled()
