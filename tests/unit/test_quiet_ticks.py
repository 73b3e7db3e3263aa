"""Quiet ticks: a healthy node's ticks run in loop callbacks while the check loop's task
sleeps; any tick with something to do (a route change, a probe to await as a coroutine, a
crash) goes back to the task. A real TCP listener and a fake HAProxy; the runtime is real."""

from __future__ import annotations

import asyncio
from pathlib import Path

from haproxy_fake import FakeHaproxy
from test_runtime import (
    FakeExabgp,
    announced,
    in_loop,
    poll,
    service,
    start_announced,
    write_config,
)

from anycast_ctl.agent.checks import Outcome
from anycast_ctl.agent.runtime import AgentRuntime
from anycast_ctl.agent.speaker import Speaker
from anycast_ctl.config.node import load_node_config

__all__ = ["service"]  # the fixture, used by name

HEALTHY = (Path(__file__).parent / "data" / "haproxy" / "healthy.csv").read_text()


async def ticks_on(runtime: AgentRuntime, name: str, count: int) -> None:
    seen = runtime.results[name].at
    for _ in range(count):
        await poll(lambda seen=seen: runtime.results[name].at != seen)
        seen = runtime.results[name].at


@in_loop
async def test_a_healthy_node_ticks_in_callbacks_while_the_task_sleeps(tmp_path, service):
    runtime, exabgp, task = await start_announced(tmp_path, service)
    await poll(lambda: runtime._quiet_tick_on is None and runtime._handover is not None)
    sleeping = runtime._handover
    await ticks_on(runtime, "lb", 5)
    assert runtime._handover is sleeping  # one sleep of the task across five ticks
    runtime.stopping.set()
    assert await task == 0


@in_loop
async def test_a_refused_connect_in_a_quiet_tick_goes_to_the_task_and_withdraws(tmp_path, service):
    runtime, exabgp, task = await start_announced(tmp_path, service)
    await ticks_on(runtime, "lb", 2)
    sleeping = runtime._handover
    service.stop()
    await poll(lambda: not announced(exabgp), timeout=1.0)
    assert runtime._handover is not sleeping  # the task ran the step
    assert runtime.results["lb"].detail.startswith("connection refused")
    await ticks_on(runtime, "lb", 2)  # and the down VIP's ticks go on
    runtime.stopping.set()
    assert await task == 0


@in_loop
async def test_a_check_crashing_as_a_quiet_tick_begins_is_fatal_and_withdraws(tmp_path, service):
    runtime, exabgp, task = await start_announced(tmp_path, service)
    await ticks_on(runtime, "lb", 2)

    class Broken:
        name, target = "lb", "nowhere"

        def probe_now(self) -> Outcome:
            raise RuntimeError("bug in a check")

        async def probe(self) -> Outcome:
            return self.probe_now()

    runtime.checks["lb"] = Broken()
    assert await asyncio.wait_for(task, 2.0) == 1
    assert not announced(exabgp)


@in_loop
async def test_haproxy_silent_past_the_timeout_is_a_soft_result_and_its_question_stays_out(
    tmp_path,
):
    fake = await FakeHaproxy(tmp_path / "s.sock", HEALTHY).start()
    check = f"{{type: haproxy, socket: {fake.path}, frontend: fe_vip, backend: be_app}}"
    path = write_config(tmp_path, 0, check=check, fall=3)
    exabgp = FakeExabgp()
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    task = asyncio.create_task(runtime.run())
    await poll(lambda: announced(exabgp))
    await ticks_on(runtime, "lb", 2)
    writer = fake.held[0]
    real_write, held = writer.write, []
    writer.write = held.append  # HAProxy busy: the answer does not come
    asked = len(fake.commands)
    await poll(lambda: runtime.results["lb"].detail.startswith("timed out after 0.04s"))
    assert announced(exabgp)  # one soft failure of fall 3
    await ticks_on(runtime, "lb", 1)
    assert len(fake.commands) == asked + 1  # the next tick waits for the same answer
    writer.write = real_write
    for data in held:
        real_write(data)
    await poll(lambda: runtime.results["lb"].detail.startswith("frontend fe_vip OPEN"))
    assert announced(exabgp)
    runtime.stopping.set()
    assert await task == 0
    fake.server.close()


@in_loop
async def test_haproxy_failing_inside_the_question_of_a_quiet_tick_withdraws_from_the_task(
    tmp_path,
):
    # The stats socket's file gone with the connection still open: `ask` delivers the error
    # before it returns, so the quiet tick must look at its futures once more after
    # registering for them. The removal watch is stopped, so only the tick can find it.
    fake = await FakeHaproxy(tmp_path / "s.sock", HEALTHY).start()
    check = f"{{type: haproxy, socket: {fake.path}, frontend: fe_vip, backend: be_app}}"
    path = write_config(tmp_path, 0, check=check)
    exabgp = FakeExabgp()
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    task = asyncio.create_task(runtime.run())
    await poll(lambda: announced(exabgp))
    await poll(lambda: runtime._quiet_tick_on is None and runtime._handover is not None)
    await ticks_on(runtime, "lb", 2)
    runtime.observer.stop()
    sleeping = runtime._handover
    fake.path.unlink()
    await poll(lambda: not announced(exabgp), timeout=1.0)
    assert runtime.results["lb"].detail.startswith("no such file"), runtime.results["lb"]
    assert runtime._handover is not sleeping  # the task ran the step
    runtime.stopping.set()
    assert await task == 0
    fake.server.close()
