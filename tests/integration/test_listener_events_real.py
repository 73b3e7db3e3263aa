"""A listener closing is an event: the agent withdraws in well under a tick, and traffic is silent.

A real HAProxy 2.6 in a network namespace of this test's lab, and the agent runtime in this
process with this thread inside that namespace (the kernel's destroy broadcasts are per
namespace) and ExaBGP replaced by an in-memory pipe that acks every line. Two frontends, each
the TCP check of one VIP. The check interval is 5 s: a poll would take seconds to notice.
`shutdown frontend` (HAProxy's runtime API) releases one frontend's port while HAProxy keeps
running, so neither the stats socket nor the process tells anything: only the listener's close.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import struct
import time

import pytest
from haproxy_rig import FakeExabgp, haproxy_config, node_config, until
from netns_thread import this_thread_in

from anycast_ctl.agent.runtime import AgentRuntime
from anycast_ctl.agent.sockdiag import ListenerWatch
from anycast_ctl.agent.speaker import Speaker
from anycast_ctl.config.node import load_node_config
from anycast_ctl.lab.net import daemons, netns

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not os.access(HAPROXY, os.X_OK), reason=f"{HAPROXY} not installed"),
]

INTERVAL = 5.0
BOUND = 0.5  # s from `shutdown frontend` to the withdraw written; a poll would take seconds
GONE, KEPT = "10.77.0.1", "10.77.0.2"  # the VIPs of frontends fe_gone and fe_kept
GONE_PORT, KEPT_PORT = 8441, 8442
CONNECTIONS = 400


def write_configs(tmp_path, backend_port: int) -> None:
    (tmp_path / "haproxy.cfg").write_text(
        haproxy_config(
            tmp_path / "admin.sock",
            f"""\
            frontend fe_gone
                bind 127.0.0.1:{GONE_PORT}
                default_backend be
            frontend fe_kept
                bind 127.0.0.1:{KEPT_PORT}
                default_backend be
            backend be
                server live 127.0.0.1:{backend_port}
            """,
        )
    )
    (tmp_path / "node.yaml").write_text(
        node_config(
            tmp_path,
            checks={
                "gone": f"{{type: tcp, port: {GONE_PORT}}}",
                "kept": f"{{type: tcp, port: {KEPT_PORT}}}",
            },
            vips=[(GONE, ["gone"]), (KEPT, ["kept"])],
            interval=INTERVAL,
            extra="events: {listeners: true}",
        )
    )


def haproxy_command(tmp_path, line: str) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        sock.connect(str(tmp_path / "admin.sock"))
        sock.sendall(line.encode() + b"\n")
        return sock.makefile().read()


def withdrawn(exabgp: FakeExabgp, vip: str, since: int = 0) -> list[float]:
    return [at for at, ln in exabgp.lines[since:] if ln.startswith("withdraw") and vip in ln]


def announced(exabgp: FakeExabgp, vip: str) -> bool:
    return any(ln.startswith("announce") and vip in ln for _, ln in exabgp.lines)


async def churn(count: int) -> float:
    """`count` connections through fe_kept, each opened, used and closed (every other one
    reset: SO_LINGER 0 also leaves a socket without a peer port); connections per second."""
    started = time.monotonic()
    for i in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", KEPT_PORT)
        writer.write(b"x")
        await writer.drain()
        await reader.read()  # the backend closes: HAProxy closes us
        if i % 2:
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        writer.close()
        await writer.wait_closed()
    return count / (time.monotonic() - started)


@contextlib.asynccontextmanager
async def lab(tag: str, namespace: str, tmp_path):
    async def backend(reader, writer):
        await reader.read(1)
        writer.close()

    live = await asyncio.start_server(backend, "127.0.0.1", 0)
    write_configs(tmp_path, live.sockets[0].getsockname()[1])
    haproxy = daemons.spawn(
        tag,
        "lb",
        [HAPROXY, "-db", "-f", str(tmp_path / "haproxy.cfg")],
        netns=namespace,
        log_path=tmp_path / "haproxy.log",
    )
    exabgp = FakeExabgp()
    path = tmp_path / "node.yaml"
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    agent = asyncio.create_task(runtime.run())
    try:
        await until(lambda: announced(exabgp, GONE) and announced(exabgp, KEPT), 10)
        # The tick that wrote the announce may still wait for its acks: it sets the VIPs'
        # next poll only after that. Start once the next poll is seconds away.
        await until(lambda: min(runtime.next_due.values()) - runtime.clock() > 2 * BOUND, 5)
        assert runtime.observer.listeners is not None, "the listener watch did not start"
        yield runtime, exabgp
    finally:
        runtime.stopping.set()
        await asyncio.wait_for(agent, 10)
        daemons.stop(haproxy)
        live.close()


async def shutdown_scenario(tag: str, namespace: str, tmp_path) -> dict:
    async with lab(tag, namespace, tmp_path) as (runtime, exabgp):
        seen = len(exabgp.lines)
        shut = time.monotonic()
        poll_in = min(runtime.next_due.values()) - runtime.clock()
        answer = await asyncio.to_thread(haproxy_command, tmp_path, "shutdown frontend fe_gone")
        await until(lambda: withdrawn(exabgp, GONE, seen), INTERVAL)
        at = withdrawn(exabgp, GONE, seen)[0]
        await asyncio.sleep(0.2)  # the other VIP had the same chance to be hit, wrongly
        return {
            "ms": (at - shut) * 1000,
            "poll_in": poll_in,
            "answer": answer.strip(),
            "detail": runtime.results["gone"].detail,
            "kept_withdrawn": withdrawn(exabgp, KEPT, seen),
            "kept_health": runtime.results["kept"].health.value,
        }


async def churn_scenario(tag: str, namespace: str, tmp_path) -> dict:
    async with lab(tag, namespace, tmp_path) as (runtime, exabgp):
        watch = runtime.observer.listeners
        assert watch is not None
        unfiltered = ListenerWatch(watch.endpoints, lambda names: None, filtered=False)
        assert unfiltered.start()
        try:
            seen = len(exabgp.lines)  # the start-up's withdraw-everything is before this
            before = (watch.wakeups, watch.messages)
            rate = await churn(CONNECTIONS)
            await until(lambda: unfiltered.messages >= 2 * CONNECTIONS, 5)
            await asyncio.sleep(0.2)  # any late message would have arrived by now
            return {
                "rate": rate,
                "filtered": (watch.wakeups - before[0], watch.messages - before[1]),
                "unfiltered": (unfiltered.wakeups, unfiltered.messages),
                "withdrawn": withdrawn(exabgp, KEPT, seen) + withdrawn(exabgp, GONE, seen),
            }
        finally:
            unfiltered.stop()


def test_a_frontend_shut_down_is_withdrawn_well_before_the_next_poll(lab_tag, tmp_path):
    namespace = netns.create_namespace(lab_tag, "lb").name
    with this_thread_in(namespace):
        outcome = asyncio.run(shutdown_scenario(lab_tag, namespace, tmp_path))
    print(
        f"\n`shutdown frontend` -> withdraw written in {outcome['ms']:.1f} ms"
        f" (the next poll was {outcome['poll_in']:.1f} s away)"
    )
    assert outcome["ms"] < BOUND * 1000, outcome
    assert outcome["poll_in"] > 2 * BOUND, outcome  # so no poll can have found it
    assert outcome["detail"].startswith("connection refused: "), outcome
    assert outcome["kept_withdrawn"] == [] and outcome["kept_health"] == "ok", outcome


def test_connections_opening_and_closing_never_wake_the_listener_watch(lab_tag, tmp_path):
    namespace = netns.create_namespace(lab_tag, "lb").name
    with this_thread_in(namespace):
        outcome = asyncio.run(churn_scenario(lab_tag, namespace, tmp_path))
    print(
        f"\n{CONNECTIONS} connections through HAProxy at {outcome['rate']:.0f}/s:"
        f" filtered watch (wakeups, messages) {outcome['filtered']},"
        f" unfiltered {outcome['unfiltered']}"
    )
    assert outcome["filtered"] == (0, 0), outcome
    assert outcome["unfiltered"][1] >= 2 * CONNECTIONS, outcome  # the closes did happen
    assert outcome["withdrawn"] == [], outcome
