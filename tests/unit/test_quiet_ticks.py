"""Quiet ticks: a healthy node's ticks run in loop callbacks while the check loop's task
sleeps; any tick with something to do (a route change, a probe to await as a coroutine, a
crash) goes back to the task. A real TCP listener and a fake HAProxy; the runtime is real."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

from haproxy_fake import FakeHaproxy
from test_runtime import FakeExabgp, announced, in_loop, poll, service, start_agent

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
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))
    await poll(lambda: runtime._quiet_tick_on is None and runtime._handover is not None)
    sleeping = runtime._handover
    await ticks_on(runtime, "lb", 5)
    assert runtime._handover is sleeping  # one sleep of the task across five ticks
    runtime.stopping.set()
    assert await task == 0


@in_loop
async def test_a_refused_connect_in_a_quiet_tick_goes_to_the_task_and_withdraws(tmp_path, service):
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))
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
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))
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
    path = tmp_path / "node.yaml"
    path.write_text(
        textwrap.dedent(f"""
        node: lb1
        bgp:
          local_as: 65101
          router_id: 10.0.0.2
          neighbors: [{{address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}}]
        timing: {{interval: 0.05, timeout: 0.04, rise: 2, fall: 3}}
        checks:
          h: {{type: haproxy, socket: {fake.path}, frontend: fe_vip, backend: be_app}}
        vips:
          - {{address: 192.0.2.10, checks: [h]}}
        loopback: {{manage: false}}
        control: {{socket: {tmp_path}/agent.sock, allow_uids: [0]}}
        drain: {{state_file: {tmp_path}/drain.json}}
        """)
    )
    exabgp = FakeExabgp()
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    task = asyncio.create_task(runtime.run())
    await poll(lambda: announced(exabgp))
    await ticks_on(runtime, "h", 2)
    writer = fake.held[0]
    real_write, held = writer.write, []
    writer.write = held.append  # HAProxy busy: the answer does not come
    asked = len(fake.commands)
    await poll(lambda: runtime.results["h"].detail.startswith("timed out after 0.04s"))
    assert announced(exabgp)  # one soft failure of fall 3
    await ticks_on(runtime, "h", 1)
    assert len(fake.commands) == asked + 1  # the next tick waits for the same answer
    writer.write = real_write
    for data in held:
        real_write(data)
    await poll(lambda: runtime.results["h"].detail.startswith("frontend fe_vip OPEN"))
    assert announced(exabgp)
    runtime.stopping.set()
    assert await task == 0
    fake.server.close()
