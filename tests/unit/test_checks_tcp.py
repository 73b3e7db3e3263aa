"""TCP check against real listeners on 127.0.0.1 ephemeral ports."""

import asyncio
import contextlib
import inspect
import os
import socket
import time

from checks_support import Server, closed_port

from anycast_ctl.agent.checks import Outcome, build_check, run_check
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import TcpCheck


def tcp(port, host="127.0.0.1"):
    return build_check("tcp", TcpCheck(type="tcp", host=host, port=port))


async def _close(reader, writer):
    writer.close()


def test_listening_port_is_ok():
    async def main():
        async with Server(_close) as server:
            return await run_check(tcp(server.port), 1.0)

    result = asyncio.run(main())
    assert result.health is Health.OK
    assert result.detail.startswith("connected to 127.0.0.1:")
    assert 0 < result.latency < 1.0


def test_closed_port_is_hard():
    port, sock = closed_port()
    try:
        result = asyncio.run(run_check(tcp(port), 1.0))
    finally:
        sock.close()
    assert (result.health, result.detail) == (
        Health.HARD_FAIL,
        f"connection refused: 127.0.0.1:{port}",
    )


def test_full_accept_queue_times_out_soft_within_the_timeout():
    # A listener with a full backlog that never accepts: the SYN goes unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue (backlog 0 still admits one or two)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        started = time.monotonic()
        result = asyncio.run(run_check(tcp(port), 0.3))
        elapsed = time.monotonic() - started
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert result.health is Health.SOFT_FAIL
    assert result.detail == f"timed out after 0.3s: 127.0.0.1:{port}"
    assert elapsed < 0.3 + 0.2


def test_ipv6_loopback_listener_is_ok():
    async def main():
        server = await asyncio.start_server(_close, "::1", 0)
        try:
            return await run_check(tcp(server.sockets[0].getsockname()[1], host="::1"), 1.0)
        finally:
            server.close()

    result = asyncio.run(main())
    assert result.health is Health.OK
    assert result.detail.startswith("connected to [::1]:")


def test_a_local_connect_is_settled_when_connect_returns_without_waiting_in_the_loop():
    # The kernel completes (or refuses) a loopback handshake inside connect(): the probe
    # must not register with the event loop for it (that costs loop passes every tick).
    async def main():
        loop = asyncio.get_running_loop()
        writers = []
        real = loop.add_writer
        loop.add_writer = lambda fd, cb, *args: writers.append(fd) or real(fd, cb, *args)
        port, sock = closed_port()
        try:
            refused = await run_check(tcp(port), 1.0)
        finally:
            sock.close()
        async with Server(_close) as server:
            ok = await run_check(tcp(server.port), 1.0)
        return ok, refused, writers

    ok, refused, writers = asyncio.run(main())
    assert ok.health is Health.OK
    assert refused.health is Health.HARD_FAIL
    assert writers == []


def test_probe_now_to_a_local_listener_is_the_outcome_itself():
    async def main():
        async with Server(_close) as server:
            return tcp(server.port).probe_now()

    outcome = asyncio.run(main())
    assert isinstance(outcome, Outcome) and outcome.health is Health.OK


def test_probe_now_with_the_handshake_still_on_leaves_it_to_await_and_closes_the_socket():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []

    def open_fds():
        return len(os.listdir("/proc/self/fd"))

    async def main():
        before = open_fds()
        begun = tcp(port).probe_now()
        assert inspect.iscoroutine(begun)
        during = open_fds()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(begun, 0.1)
        return before, during, open_fds()

    try:
        for _ in range(4):  # fill the accept queue: the next SYN goes unanswered
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        before, during, after = asyncio.run(main())
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert during == before + 1  # the probe's socket, handed to the coroutine
    assert after == before
