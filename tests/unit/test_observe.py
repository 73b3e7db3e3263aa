"""Shared observations: one read per HAProxy socket per tick, one probe per distinct check,
and the death watch on the stats socket. Fake HAProxy sockets (asyncio unix servers) only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

from haproxy_fake import FakeHaproxy

from anycast_ctl.agent.checks import HaproxySource, probe_key
from anycast_ctl.agent.health import Health
from anycast_ctl.agent.observe import Observer
from anycast_ctl.config.loading import validate
from anycast_ctl.config.node import NodeConfig

DATA = Path(__file__).parent / "data" / "haproxy"
HEALTHY = (DATA / "healthy.csv").read_text()


def in_loop(test):
    import functools

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(test(*args, **kwargs), 10))

    return wrapper


def config(tmp_path: Path, checks: dict, vips: list[dict]) -> NodeConfig:
    return validate(
        NodeConfig,
        {
            "node": "lb1",
            "bgp": {
                "local_as": 65101,
                "router_id": "10.0.0.2",
                "neighbors": [
                    {"address": "10.0.0.1", "local_address": "10.0.0.2", "peer_as": 65000}
                ],
            },
            "checks": checks,
            "vips": vips,
            "loopback": {"manage": False},
        },
        "<test>",
    )


def haproxy_check(sock: Path, frontend="fe_vip", backend="be_app", minimum=1) -> dict:
    return {
        "type": "haproxy",
        "socket": str(sock),
        "frontend": frontend,
        "backend": backend,
        "min_servers_up": minimum,
    }


@in_loop
async def test_every_check_on_one_socket_shares_one_read_per_tick(tmp_path):
    haproxy = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await haproxy.start()
    checks = {f"c{i}": haproxy_check(haproxy.path, minimum=1 + i % 4) for i in range(50)}
    checks["other-fe"] = haproxy_check(haproxy.path, frontend="both", backend="both")
    vips = [{"address": f"192.0.2.{i + 1}", "checks": [f"c{i}"]} for i in range(50)]
    vips.append({"address": "198.51.100.1", "checks": ["other-fe"]})
    observer = Observer(config(tmp_path, checks, vips))
    results = await observer.run({name: 0.5 for name in checks})
    assert len(haproxy.commands) == 1  # 51 checks, one command line
    assert haproxy.commands[0] == (
        b"show info; show stat be_app 7 -1; show stat both 7 -1; show stat fe_vip 7 -1\n"
    )
    # each check judges its own frontend/backend and minimum from the shared answer
    assert results["c2"].health is Health.OK and results["c3"].health is Health.SOFT_FAIL
    assert results["c3"].detail == "be_app: 3/5 servers UP, need 4"
    assert results["other-fe"].detail == "frontend both OPEN, both: 1/1 servers UP"
    await observer.run({name: 0.5 for name in checks})
    assert len(haproxy.commands) == 2  # the next tick asks again, once
    assert haproxy.connections == 1  # on the same connection: no connect per tick
    haproxy.server.close()


@in_loop
async def test_identical_checks_under_different_names_share_one_probe(tmp_path):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    checks = {f"tcp{i}": {"type": "tcp", "port": port} for i in range(20)}
    checks["slow"] = {"type": "tcp", "port": port, "timeout": 0.2}  # only the timeout differs
    vips = [{"address": f"192.0.2.{i + 1}", "checks": [f"tcp{i}", "slow"]} for i in range(20)]
    observer = Observer(config(tmp_path, checks, vips))
    results = await observer.run({name: 0.5 for name in checks})
    assert observer.probes == 1
    assert sorted(results) == sorted(checks)
    assert {r.check for r in results.values()} == set(checks)  # each result carries its name
    assert all(r.health is Health.OK for r in results.values())
    server.close()


def test_probe_keys_differ_with_what_is_probed_and_ignore_the_timeout(tmp_path):
    cfg = config(
        tmp_path,
        {
            "a": {"type": "tcp", "port": 1},
            "b": {"type": "tcp", "port": 1, "timeout": 0.1},
            "c": {"type": "tcp", "port": 2},
        },
        [{"address": "192.0.2.1", "checks": ["a", "b", "c"]}],
    )
    keys = {name: probe_key(spec) for name, spec in cfg.checks.items()}
    assert keys["a"] == keys["b"] != keys["c"]


@in_loop
async def test_callers_at_the_same_time_share_one_fetch_and_a_later_one_fetches_again(tmp_path):
    haproxy = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await haproxy.start()
    source = HaproxySource(haproxy.path)
    source.proxies |= {"fe_vip", "be_app"}
    first = await asyncio.gather(*(source.rows() for _ in range(10)))
    assert source.fetches == 1 and all(rows is first[0] for rows in first)
    await source.rows()
    assert source.fetches == 2
    haproxy.server.close()


@in_loop
async def test_many_proxies_are_one_full_dump_not_an_over_long_command_line(tmp_path):
    source = HaproxySource(tmp_path / "s.sock")
    source.proxies |= {f"vip-web{i}" for i in range(1000)}
    assert source.command() == b"show info; show stat -1 7 -1\n"
    source.proxies = {"fe", "be"}
    assert source.command() == b"show info; show stat be 7 -1; show stat fe 7 -1\n"


@in_loop
async def test_the_watch_reports_a_dead_haproxy_at_once(tmp_path):
    haproxy = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await haproxy.start()
    source = HaproxySource(haproxy.path)
    downs = []
    watch = asyncio.create_task(source.watch(downs.append, retry=5.0))
    deadline = time.monotonic() + 2
    while not haproxy.held:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    started = time.monotonic()
    haproxy.die()
    while not downs:
        assert time.monotonic() - started < 1.0, "not reported"
        await asyncio.sleep(0.002)
    assert downs[0].health is Health.HARD_FAIL
    assert downs[0].detail == f"connection refused: {haproxy.path}"
    watch.cancel()


@in_loop
async def test_an_idle_timeout_or_reload_closing_the_watch_is_not_a_death(tmp_path):
    haproxy = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await haproxy.start()
    source = HaproxySource(haproxy.path)
    downs = []
    watch = asyncio.create_task(source.watch(downs.append, retry=5.0))
    for round_ in range(1, 4):
        deadline = time.monotonic() + 2
        while len(haproxy.held) < round_:
            assert time.monotonic() < deadline, "the watch did not reconnect"
            await asyncio.sleep(0.005)
        haproxy.held[-1].transport.abort()  # HAProxy's `stats timeout`: alive, just closing
    assert downs == []
    watch.cancel()
    haproxy.server.close()


@in_loop
async def test_a_missing_socket_is_retried_quietly(tmp_path):
    source = HaproxySource(tmp_path / "absent.sock")
    downs = []
    watch = asyncio.create_task(source.watch(downs.append, retry=0.01))
    await asyncio.sleep(0.1)
    assert downs == [] and not watch.done()  # the regular checks report a missing socket
    haproxy = FakeHaproxy(tmp_path / "absent.sock", HEALTHY)
    await haproxy.start()
    deadline = time.monotonic() + 2
    while not haproxy.held:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    watch.cancel()
    haproxy.server.close()


@in_loop
async def test_a_stopping_worker_after_a_reload_is_left_for_the_new_one(tmp_path):
    old = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await old.start()
    source = HaproxySource(old.path)
    source.proxies |= {"fe_vip", "be_app"}
    await source.rows()
    old.stopping = 1  # a reload with the listener handed over: same socket file, old worker
    rows = await source.rows()
    assert old.connections == 2  # asked again on a fresh connection (the new worker)
    assert rows["fe_vip"][0].status == "OPEN"
    old.server.close()


@in_loop
async def test_a_new_socket_file_means_a_new_haproxy_and_a_new_connection(tmp_path):
    first = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await first.start()
    source = HaproxySource(first.path)
    source.proxies |= {"fe_vip", "be_app"}
    await source.rows()
    first.server.close()
    first.path.unlink()
    second = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await second.start()  # same path, new inode; the first still holds our connection
    await source.rows()
    assert (len(first.commands), len(second.commands)) == (1, 1)
    second.server.close()


@in_loop
async def test_a_deleted_socket_file_is_a_hard_failure_even_with_a_connection_open(tmp_path):
    from anycast_ctl.agent.checks import build_check, run_check
    from anycast_ctl.config.node import HaproxyCheck

    fake = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await fake.start()
    check = build_check(
        "lb", HaproxyCheck(type="haproxy", socket=fake.path, frontend="fe_vip", backend="be_app")
    )
    assert (await run_check(check, 1.0)).health is Health.OK
    fake.path.unlink()
    gone = await run_check(check, 1.0)
    assert (gone.health, gone.detail) == (Health.HARD_FAIL, f"no such file: {fake.path}")
    fake.server.close()


async def connected_source(tmp_path: Path) -> tuple[FakeHaproxy, HaproxySource]:
    """A fake HAProxy and a source on it whose first question (which connects) is answered."""
    fake = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await fake.start()
    source = HaproxySource(fake.path)
    source.proxies |= {"fe_vip"}
    await source.rows()
    return fake, source


@in_loop
async def test_a_slow_answer_is_awaited_by_the_next_tick_not_asked_again(tmp_path):
    fake, source = await connected_source(tmp_path)
    # the answer is held back: HAProxy busy; the first caller gives up (its check times out)
    writer = fake.held[0]
    real_write = writer.write
    queued = []
    writer.write = queued.append
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(source.rows(), 0.05)
    waiting = asyncio.ensure_future(source.rows())  # the next tick joins the same question
    await asyncio.sleep(0.01)
    for data in queued:
        real_write(data)
    rows = await asyncio.wait_for(waiting, 2.0)
    assert rows["fe_vip"][0].status == "OPEN"
    assert len(fake.commands) == 2 and fake.connections == 1
    fake.server.close()


@in_loop
async def test_on_an_open_connection_the_caller_writes_the_question_without_a_task(tmp_path):
    fake, source = await connected_source(tmp_path)  # the first question connected, in a task
    tasks_before = asyncio.all_tasks()
    asking = asyncio.ensure_future(source.rows())
    await asyncio.sleep(0)  # the caller's first step: the question is written now
    assert asyncio.all_tasks() - tasks_before == {asking}
    rows = await asking
    assert rows["fe_vip"][0].status == "OPEN"
    assert source.fetches == 2 and source.connects == 1
    fake.server.close()


@in_loop
async def test_a_tick_connects_first_then_asks_haproxy_and_only_haproxy_is_awaited(tmp_path):
    # The connect wakes HAProxy; the question then finds it awake (measured: HAProxy's
    # question and answer cost the agent ~5x less in that order). A local connect is
    # settled inside connect(): only HAProxy's answer is awaited, in the caller's task.
    haproxy = FakeHaproxy(tmp_path / "s.sock", HEALTHY)
    await haproxy.start()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    checks = {"h": haproxy_check(haproxy.path), "t": {"type": "tcp", "port": port}}
    observer = Observer(config(tmp_path, checks, [{"address": "192.0.2.1", "checks": ["h", "t"]}]))
    await observer.run({"h": 0.5, "t": 0.5})  # the first question connects to HAProxy
    order = []
    tcp, source = observer.checks["t"], observer.sources[haproxy.path]
    connect, ask = tcp.probe_now, source.ask
    tcp.probe_now = lambda: order.append("connect") or connect()
    source.ask = lambda judge: order.append("ask") or ask(judge)
    tasks_before = asyncio.all_tasks()
    running = asyncio.ensure_future(observer.run({"h": 0.5, "t": 0.5}))
    await asyncio.sleep(0)  # the caller's first step: both begun
    assert order == ["connect", "ask"]
    assert asyncio.all_tasks() - tasks_before == {running}
    results = await running
    assert results["h"].health is Health.OK and results["t"].health is Health.OK
    haproxy.server.close()
    server.close()


@in_loop
async def test_when_delivered_is_called_once_with_the_waiters_futures_already_done(tmp_path):
    fake, source = await connected_source(tmp_path)
    seen = []
    answer = source.ask(lambda rows: rows["fe_vip"][0].status)
    source.when_delivered(lambda: seen.append(answer.done() and answer.result()))
    await asyncio.wait_for(asyncio.shield(answer), 2.0)
    assert seen == ["OPEN"]
    await source.rows()  # the next answer: the callback was for one delivery only
    assert seen == ["OPEN"]
    fake.server.close()


@in_loop
async def test_a_socket_file_gone_with_the_connection_open_is_an_error_inside_ask(tmp_path):
    # So a quiet tick must look at its futures once more after registering (quiet_ticks.py).
    fake, source = await connected_source(tmp_path)
    fake.path.unlink()
    answer = source.ask(lambda rows: rows)
    assert answer.done() and isinstance(answer.exception(), FileNotFoundError)
    fake.server.close()


def listening_check(port: int) -> dict:
    return {"type": "listening", "host": "127.0.0.1", "port": port}


@in_loop
async def test_listening_checks_share_one_netlink_socket_and_see_a_close_at_the_next_run(tmp_path):
    # The kernel's own answer (sock_diag needs no privilege): a run right after another must
    # see a listener that closed in between.
    first, second = socket.socket(), socket.socket()
    for sock in (first, second):
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
    ports = [sock.getsockname()[1] for sock in (first, second)]
    observer = Observer(
        config(
            tmp_path,
            {"a": listening_check(ports[0]), "b": listening_check(ports[1])},
            [{"address": "192.0.2.10", "checks": ["a", "b"]}],
        )
    )
    assert {c.table for c in observer.checks.values()} == {observer.listener_table}
    results = await observer.run({"a": 0.5, "b": 0.5})
    assert {r.health for r in results.values()} == {Health.OK}
    first.close()
    results = await observer.run({"a": 0.5, "b": 0.5})
    assert results["a"].health is Health.HARD_FAIL, results["a"]
    assert results["b"].health is Health.OK, results["b"]
    assert observer.listener_table.lookups == 4
    second.close()
