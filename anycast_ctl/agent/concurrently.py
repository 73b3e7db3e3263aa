"""Running coroutines side by side at the least cost in event-loop passes (runs every tick)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def gather_inline(coroutines: list[Coroutine[Any, Any, T]]) -> list[T | BaseException]:
    """`asyncio.gather(*coroutines, return_exceptions=True)`, with the first coroutine run in
    the caller's own task and the results of tasks already done taken without waiting.

    The check loop awaits its probes still underway with it (observe.Observer.finish): one
    task, a gathering future and the loop passes that hand their results on are work for
    nothing when the probes are mostly over already. Cancelling the caller cancels them all.
    """
    if not coroutines:
        return []
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(coroutine) for coroutine in coroutines[1:]]
    try:
        try:
            first: T | BaseException = await coroutines[0]
        except Exception as exc:  # return_exceptions: the caller decides what it means
            first = exc
        if not all(task.done() for task in tasks):
            await asyncio.wait(tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    return [first, *(_outcome(task) for task in tasks)]


def _outcome(task: asyncio.Task[T]) -> T | BaseException:
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception() or task.result()
