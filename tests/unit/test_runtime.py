"""The agent runtime end to end in one process: real checks against a real local TCP
service, ExaBGP replaced by in-memory pipes that ack every command (DESIGN: inject the pipes).
The real ExaBGP + FRR path is covered by tests/integration/test_agent_e2e.py."""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest
from test_listener_watch import subscribable

from anycast_ctl.agent.control import request
from anycast_ctl.agent.exabgp_watch import PROBE
from anycast_ctl.agent.runtime import AgentRuntime
from anycast_ctl.agent.speaker import Speaker
from anycast_ctl.config.node import load_node_config
from anycast_ctl.lab.net.host_ports import free_port

VIP = "192.0.2.10/32"


def in_loop(test):
    """Run an async test body in a fresh event loop (the suite uses no asyncio plugin)."""
    import functools

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(test(*args, **kwargs), 20))

    return wrapper


class FakeExabgp:
    """ExaBGP's side of the pipe: records our lines and answers `done` to each."""

    def __init__(self) -> None:
        self.to_agent = asyncio.StreamReader()
        self.lines: list[str] = []

    def write(self, text: str):
        for line in text.splitlines():
            if line != PROBE:  # liveness probes are answered, not recorded: tests are on routes
                self.lines.append(line)
            self.to_agent.feed_data(b"done\n")

    def flush(self):
        pass


async def poll(predicate, timeout=3.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


@pytest.fixture
def service():
    """A real TCP listener standing in for the local LB; close() makes it refuse."""

    class Service:
        server = None

        async def start(self):
            self.server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]

        def stop(self):
            self.server.close()

    return Service()


def write_config(tmp_path, port, extra="", check="", fall=2):
    """The node config of these tests: one VIP and its check `lb` (a TCP connect to `port`
    unless `check` gives another, as YAML flow text)."""
    check = check or f"{{type: tcp, port: {port}}}"
    text = textwrap.dedent(f"""
        node: lb1
        bgp:
          local_as: 65101
          router_id: 10.0.0.2
          neighbors: [{{address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}}]
        timing: {{interval: 0.05, timeout: 0.04, rise: 2, fall: {fall}}}
        checks:
          lb: {check}
        vips:
          - {{address: 192.0.2.10, checks: [lb]}}
        loopback: {{manage: false}}
        control: {{socket: {tmp_path}/agent.sock, allow_uids: [0]}}
        drain: {{state_file: {tmp_path}/drain.json}}
        {extra}
    """)
    path = tmp_path / "node.yaml"
    path.write_text(text)
    return path


async def start_agent(tmp_path, port):
    path = write_config(tmp_path, port)
    exabgp = FakeExabgp()
    speaker = Speaker(exabgp.to_agent, exabgp)
    runtime = AgentRuntime(load_node_config(path), path, speaker)
    task = asyncio.create_task(runtime.run())
    return runtime, exabgp, task, path


async def start_announced(tmp_path, service):
    """The service started and an agent checking it, once the agent has announced the VIP."""
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))
    return runtime, exabgp, task


def announced(exabgp) -> bool:
    last = [line for line in exabgp.lines if VIP in line]
    return bool(last) and last[-1].split()[0] == "announce"


@in_loop
async def test_announces_after_rise_and_withdraws_at_once_on_refusal(tmp_path, service):
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))
    # Fail closed at start: the first line is a withdraw, before any check ran.
    assert "withdraw" in exabgp.lines[0] and VIP in exabgp.lines[0]
    announces_so_far = sum("announce" in line for line in exabgp.lines)
    await poll(lambda: runtime.results["lb"].at > 0 and len(runtime.results) == 1)
    service.stop()
    await poll(lambda: not announced(exabgp), timeout=1.0)
    assert sum("announce" in line for line in exabgp.lines) == announces_so_far  # no churn
    runtime.stopping.set()
    assert await task == 0


async def start_slow_agent(tmp_path, port, extra=""):
    """An agent whose checks run every 5 s once its VIP is up."""
    path = write_config(tmp_path, port, extra)
    path.write_text(
        path.read_text().replace("interval: 0.05, timeout: 0.04, rise: 2", "interval: 5, rise: 1")
    )
    exabgp = FakeExabgp()
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    return runtime, exabgp, asyncio.create_task(runtime.run())


@pytest.mark.skipif(not subscribable(), reason="this kernel refuses the sock_diag destroy groups")
@in_loop
async def test_a_listener_closing_runs_its_checks_at_once_not_at_the_next_tick(tmp_path, service):
    await service.start()
    runtime, exabgp, task = await start_slow_agent(
        tmp_path, service.port, "events: {listeners: true}"
    )
    await poll(lambda: announced(exabgp))
    assert runtime.observer.listeners is not None
    probes = runtime.observer.probes
    service.stop()  # its listening socket closes; the next tick is ~5 s away
    await poll(lambda: not announced(exabgp), timeout=1.0)
    assert runtime.observer.probes == probes + 1
    assert runtime.results["lb"].detail.startswith("connection refused")
    runtime.stopping.set()
    assert await task == 0


@pytest.mark.parametrize("extra", ["", "events: {listeners: false}"])
@in_loop
async def test_the_listener_watch_is_off_by_default_and_when_the_config_says_so(
    tmp_path, service, extra
):
    await service.start()
    runtime, exabgp, task = await start_slow_agent(tmp_path, service.port, extra)
    await poll(lambda: announced(exabgp))
    assert runtime.observer.listeners is None
    runtime.stopping.set()
    assert await task == 0


@in_loop
async def test_checks_start_before_the_set_up_ends_and_announce_only_after_it(tmp_path, service):
    """The first rise runs beside the set-up (second chance table, control socket): rise
    good results are not enough while it lasts; the first good one after it announces."""
    await service.start()
    path = write_config(tmp_path, service.port)
    exabgp = FakeExabgp()
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    set_up_may_end = asyncio.Event()
    services = runtime._services

    async def slow_services():
        await set_up_may_end.wait()
        await services()

    runtime._services = slow_services
    task = asyncio.create_task(runtime.run())
    seen: set[float] = set()

    def rounds() -> int:
        if "lb" in runtime.results:
            seen.add(runtime.results["lb"].at)
        return len(seen)

    rise = runtime.config.timing.rise
    await poll(lambda: rounds() > 2 * rise)  # good results, well past rise of them
    assert not announced(exabgp) and runtime.statuses[VIP].state.value == "rising"
    assert exabgp.lines and all(line.startswith("withdraw") for line in exabgp.lines)
    set_up_may_end.set()
    await poll(lambda: announced(exabgp), timeout=1.0)
    runtime.stopping.set()
    assert await task == 0


@in_loop
async def test_steady_health_sends_no_repeated_updates(tmp_path, service):
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))
    checks_before = len(exabgp.lines)
    results_before = runtime.results["lb"].at
    await poll(lambda: runtime.results["lb"].at > results_before + 0.3)  # several more intervals
    assert len(exabgp.lines) == checks_before
    runtime.stopping.set()
    await task
    assert exabgp.lines[-1].split()[0] == "withdraw"  # SIGTERM path withdraws what was up


@in_loop
async def test_drain_over_socket_withdraws_persists_and_undrain_returns(tmp_path, service):
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))
    sock = str(tmp_path / "agent.sock")
    answer = await asyncio.to_thread(request, sock, {"op": "drain", "reason": "kernel upgrade"})
    assert answer["ok"] and answer["vips"][0]["state"] == "drained"
    assert answer["vips"][0]["drain"]["reason"] == "kernel upgrade"
    assert not announced(exabgp)
    assert json.loads((tmp_path / "drain.json").read_text())  # persisted for the next start
    answer = await asyncio.to_thread(request, sock, {"op": "undrain"})
    assert answer["ok"] and answer["vips"][0]["drain"] is None
    await poll(lambda: announced(exabgp))
    runtime.stopping.set()
    await task


@in_loop
async def test_drain_survives_an_agent_restart(tmp_path, service):
    await service.start()
    runtime, exabgp, task, path = await start_agent(tmp_path, service.port)
    await poll(lambda: runtime._control is not None)
    await asyncio.to_thread(request, str(tmp_path / "agent.sock"), {"op": "drain", "reason": "rma"})
    runtime.stopping.set()
    await task
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(
        lambda: runtime.results.get("lb") is not None and runtime.statuses[VIP].state == "drained"
    )
    await poll(lambda: runtime.results["lb"].at > runtime.statuses[VIP].since + 0.2)
    assert not any("announce" in line and "withdraw" not in line for line in exabgp.lines)
    runtime.stopping.set()
    await task


@in_loop
async def test_reload_with_a_bad_config_keeps_the_running_one(tmp_path, service):
    await service.start()
    runtime, exabgp, task, path = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))
    path.write_text(path.read_text().replace("rise: 2", "rise: 0"))
    assert await runtime.reload() is False
    assert runtime.config.timing.rise == 2 and announced(exabgp)
    path.write_text(
        path.read_text()
        .replace("rise: 0", "rise: 2")
        .replace(
            "- {address: 192.0.2.10, checks: [lb]}",
            "- {address: 192.0.2.10, checks: [lb], med: 50}",
        )
    )
    assert await runtime.reload() is True
    assert "med 50" in exabgp.lines[-1]  # changed attributes re-announced once
    runtime.stopping.set()
    await task


@in_loop
async def test_a_reload_closes_the_old_listener_socket_and_checks_with_a_new_one(tmp_path, service):
    await service.start()
    check = f"{{type: listening, port: {service.port}}}"
    path = write_config(tmp_path, service.port, check=check)
    exabgp = FakeExabgp()
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    task = asyncio.create_task(runtime.run())
    await poll(lambda: announced(exabgp))
    old = runtime.observer.listener_table
    assert old.open  # the checks looked up the listener through it
    assert await runtime.reload() is True
    assert not old.open  # closed, not left to a garbage collector the agent turns off
    new = runtime.observer.listener_table
    await poll(lambda: new.lookups >= 2)
    assert runtime.results["lb"].detail.startswith("listening on") and announced(exabgp)
    runtime.stopping.set()
    assert await task == 0


@in_loop
async def test_a_crashing_check_is_fatal_and_withdraws(tmp_path, service):
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))

    class Broken:
        name, target = "lb", "nowhere"

        async def probe(self):
            raise RuntimeError("bug in a check")

    runtime.checks["lb"] = Broken()
    assert await asyncio.wait_for(task, 2.0) == 1
    assert not announced(exabgp)


@in_loop
async def test_metrics_endpoint_serves_vip_state_on_localhost_when_enabled(tmp_path, service):
    import urllib.request

    from anycast_ctl.agent.metrics import AgentMetrics

    await service.start()
    port = free_port()
    path = write_config(
        tmp_path, service.port, extra=f"metrics: {{enabled: true, listen_port: {port}}}"
    )
    exabgp = FakeExabgp()
    runtime = AgentRuntime(
        load_node_config(path), path, Speaker(exabgp.to_agent, exabgp), metrics=AgentMetrics("lb1")
    )
    task = asyncio.create_task(runtime.run())
    await poll(lambda: announced(exabgp))
    url = f"http://127.0.0.1:{port}/metrics"
    body = (await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read())).decode()
    assert 'anycast_vip_state{state="up",vip="192.0.2.10/32"} 1.0' in body
    assert 'anycast_check_results_total{check="lb",health="ok"}' in body
    runtime.stopping.set()
    await task


@in_loop
async def test_a_session_coming_back_up_reannounces_what_is_up(tmp_path, service):
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: announced(exabgp))
    announces = sum(line.startswith("announce") for line in exabgp.lines)
    up = (
        '{ "exabgp": "5.0.0", "type": "state", "neighbor": { "address": { "local": "10.0.0.2", '
        '"peer": "10.0.0.1" }, "asn": { "local": 65101, "peer": 65000 }, "state": "up" } }\n'
    )
    exabgp.to_agent.feed_data(up.encode())
    await poll(lambda: sum(line.startswith("announce") for line in exabgp.lines) == announces + 1)
    assert runtime.speaker.peers == {"10.0.0.1": True}
    runtime.stopping.set()
    await task


@in_loop
async def test_connections_left_are_counted_only_when_the_request_asks(tmp_path, service):
    await service.start()
    runtime, exabgp, task, _ = await start_agent(tmp_path, service.port)
    await poll(lambda: runtime._control is not None)
    sock = str(tmp_path / "agent.sock")
    plain = await asyncio.to_thread(request, sock, {"op": "status"})
    assert plain["ok"] and "connections_left" not in plain
    asked = await asyncio.to_thread(request, sock, {"op": "status", "connections": True})
    # The VIP is not on this host: nothing is left (or, without ss, the count is unknown).
    assert asked["connections_left"] in (0, None)
    assert set(asked["connections_left_by_vip"]) <= {VIP}
    runtime.stopping.set()
    await task
