"""The runtime's start-up and hang handling in one process: systemd told READY after the
first decision for every VIP, the watchdog fed, an ExaBGP that stops answering ends the agent
with exit 1 quickly, and `status` shows ExaBGP's last line in the right clock."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import time

from test_runtime import FakeExabgp, in_loop, poll, service  # noqa: F401 (fixture)

from anycast_ctl.agent.runtime import AgentRuntime
from anycast_ctl.agent.sdnotify import Notifier
from anycast_ctl.agent.speaker import Speaker
from anycast_ctl.cli.status_table import format_status
from anycast_ctl.config.node import load_node_config


def config(tmp_path, port, extra=""):
    path = tmp_path / "node.yaml"
    path.write_text(
        textwrap.dedent(f"""
            node: lb1
            bgp:
              local_as: 65101
              router_id: 10.0.0.2
              neighbors: [{{address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}}]
            timing: {{interval: 0.05, timeout: 0.04, rise: 2, fall: 2}}
            checks:
              lb: {{type: tcp, port: {port}}}
            vips:
              - {{address: 192.0.2.10, checks: [lb]}}
              - {{address: 192.0.2.11, checks: [lb]}}
            loopback: {{manage: false}}
            control: {{socket: {tmp_path}/agent.sock, allow_uids: [0]}}
            drain: {{state_file: {tmp_path}/drain.json}}
        """)
        + extra
    )
    return path


class Freezable(FakeExabgp):
    frozen = False

    def write(self, text: str):
        if not self.frozen:
            super().write(text)


@in_loop
async def test_ready_after_the_first_decisions_and_the_watchdog_is_fed(tmp_path, service):  # noqa: F811
    await service.start()
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify"))
    systemd.setblocking(False)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"}
    path = config(tmp_path, service.port)
    exabgp = FakeExabgp()
    runtime = AgentRuntime(
        load_node_config(path), path, Speaker(exabgp.to_agent, exabgp), notifier=Notifier(env)
    )
    task = asyncio.create_task(runtime.run())
    messages: list[bytes] = []

    def drain() -> list[bytes]:
        try:
            while True:
                messages.append(systemd.recv(4096))
        except BlockingIOError:
            return messages

    await poll(lambda: any(m.startswith(b"READY=1") for m in drain()))
    ready = next(m for m in messages if m.startswith(b"READY=1"))
    assert runtime.failsafe.decided == {"192.0.2.10/32", "192.0.2.11/32"}
    assert b"STATUS=0 of 2 VIPs announced" in ready  # the first decision: rising, not yet up
    await poll(lambda: drain().count(b"WATCHDOG=1") >= 3, timeout=2)
    runtime.stopping.set()
    assert await task == 0
    assert drain()[-1] == b"STOPPING=1"
    systemd.close()


@in_loop
async def test_an_exabgp_that_stops_answering_ends_the_agent_with_exit_1(tmp_path, service):  # noqa: F811
    await service.start()
    path = config(tmp_path, service.port, "lifeline: {exabgp_answer_within: 0.3}\n")
    exabgp = Freezable()
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    task = asyncio.create_task(runtime.run())
    await poll(lambda: runtime.failsafe.ready and runtime.statuses["192.0.2.10/32"].announced)
    exabgp.frozen = True
    frozen_at = time.monotonic()
    assert await asyncio.wait_for(task, 3) == 1
    took = time.monotonic() - frozen_at
    assert took < 0.3 + 0.3, f"took {took:.2f}s to give up on ExaBGP"
    assert not runtime.speaker.alive


@in_loop
async def test_status_shows_exabgps_last_line_as_seconds_ago(tmp_path, service):  # noqa: F811
    await service.start()
    path = config(tmp_path, service.port)
    exabgp = FakeExabgp()
    # The speaker on the monotonic clock (its default), the runtime on the wall clock.
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    task = asyncio.create_task(runtime.run())
    await poll(lambda: runtime.speaker.last_line_at is not None)
    payload = runtime.status()
    assert abs(payload["exabgp"]["last_line_at"] - time.time()) < 2
    text = format_status(payload, now=time.time())
    assert "last line 0s ago" in text.splitlines()[0], text
    runtime.stopping.set()
    await task


@in_loop
async def test_a_flapping_vip_is_suppressed_shown_and_announced_again(tmp_path, caplog):
    """A real exec check that passes while a file exists; the file comes and goes."""
    flag = tmp_path / "healthy"
    flag.touch()
    path = tmp_path / "node.yaml"
    path.write_text(
        textwrap.dedent(f"""
            node: lb1
            bgp:
              local_as: 65101
              router_id: 10.0.0.2
              neighbors: [{{address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}}]
            timing: {{interval: 0.05, timeout: 0.04, rise: 1, fall: 1}}
            damping: {{half_life: 0.5, max_suppress: 2}}
            checks:
              flag: {{type: exec, command: [test, -e, {flag}]}}
            vips:
              - {{address: 192.0.2.10, checks: [flag]}}
            loopback: {{manage: false}}
            control: {{socket: {tmp_path}/agent.sock, allow_uids: [0]}}
            drain: {{state_file: {tmp_path}/drain.json}}
        """)
    )
    caplog.set_level("INFO", logger="anycast_ctl.audit")
    exabgp = FakeExabgp()
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    task = asyncio.create_task(runtime.run())
    vip = "192.0.2.10/32"

    def state():
        return runtime.statuses[vip].state.value

    for _ in range(3):  # three quick withdraw/announce cycles
        await poll(lambda: state() in ("up", "suppressed"))
        flag.unlink()
        await poll(lambda: state() == "down")
        flag.touch()
    await poll(lambda: state() == "suppressed")
    view = runtime.status()["vips"][0]
    assert view["announced"] is False and view["damping"]["suppressed"] is True
    assert view["damping"]["reuse_at"] > time.time()
    assert "suppressed until" in caplog.text
    routes = [line.split()[0] for line in exabgp.lines if vip in line]
    assert routes[-1] == "withdraw"  # healthy, but held out
    await poll(lambda: state() == "up", timeout=3)  # the penalty decays below reuse
    assert [line.split()[0] for line in exabgp.lines if vip in line][-1] == "announce"
    runtime.stopping.set()
    assert await task == 0
