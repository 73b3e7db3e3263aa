"""The `listening` check against the real kernel: it says what a connect would have found.

In a network namespace of this test's lab, real listening sockets (exact, wildcard, IPv6
dual-stack and IPV6_V6ONLY, a full accept queue) and, for each host and port, the `tcp`
check's real connect next to the `listening` check's sock_diag lookup: the two must agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from netns_thread import this_thread_in

from anycast_ctl.agent.checks import build_check, run_check
from anycast_ctl.agent.checks.listening import ListenerTable
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import ListeningCheck, TcpCheck
from anycast_ctl.lab.net import netns

pytestmark = pytest.mark.root

EXACT, WILDCARD, DUAL, V6ONLY, NOTHING = 8301, 8302, 8303, 8304, 8305
TIMEOUT = 0.3  # s for a connect whose SYN the kernel drops (a full queue) to count as soft


def listen(family: int, host: str, port: int, backlog: int = 16, v6only: bool = False):
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def both(host: str, port: int, table: ListenerTable) -> tuple[Health, Health]:
    """(the connect's health, the listener table's) for host:port, now."""
    tcp = build_check("tcp", TcpCheck(type="tcp", host=host, port=port))
    listening = build_check(
        "listening", ListeningCheck(type="listening", host=host, port=port), listeners=table
    )

    async def run() -> tuple[Health, Health]:
        connected = await run_check(tcp, TIMEOUT)
        looked_up = await run_check(listening, TIMEOUT)
        return connected.health, looked_up.health

    return asyncio.run(run())


@pytest.fixture
def namespace(lab_tag):
    name = netns.create_namespace(lab_tag, "ls").name
    with this_thread_in(name), contextlib.ExitStack() as sockets:
        yield sockets


def test_the_listener_table_agrees_with_a_connect_for_every_kind_of_listener(namespace):
    namespace.enter_context(listen(socket.AF_INET, "127.0.0.1", EXACT))
    namespace.enter_context(listen(socket.AF_INET, "0.0.0.0", WILDCARD))
    namespace.enter_context(listen(socket.AF_INET6, "::", DUAL))
    namespace.enter_context(listen(socket.AF_INET6, "::", V6ONLY, v6only=True))
    table = ListenerTable()
    seen = {}
    for host in ("127.0.0.1", "127.0.0.2", "::1"):
        for port in (EXACT, WILDCARD, DUAL, V6ONLY, NOTHING):
            connected, looked_up = both(host, port, table)
            seen[(host, port)] = looked_up
            assert looked_up == connected, (host, port, connected, looked_up)
    # Both answers occur: the agreement is not all-OK or all-refused.
    assert seen[("127.0.0.2", DUAL)] is Health.OK
    assert seen[("127.0.0.2", EXACT)] is Health.HARD_FAIL
    assert seen[("127.0.0.1", V6ONLY)] is Health.HARD_FAIL
    assert seen[("::1", V6ONLY)] is Health.OK


def test_a_listener_closing_is_hard_at_the_next_look(namespace):
    table = ListenerTable()
    sock = listen(socket.AF_INET, "127.0.0.1", EXACT)
    assert both("127.0.0.1", EXACT, table) == (Health.OK, Health.OK)
    sock.close()
    assert both("127.0.0.1", EXACT, table) == (Health.HARD_FAIL, Health.HARD_FAIL)


def test_a_full_accept_queue_is_soft_as_the_connect_that_times_out(namespace):
    namespace.enter_context(listen(socket.AF_INET, "127.0.0.1", EXACT, backlog=1))
    waiting = [namespace.enter_context(socket.socket()) for _ in range(2)]
    for client in waiting:  # never accepted: the queue holds backlog + 1
        client.connect(("127.0.0.1", EXACT))
    table = ListenerTable()
    assert both("127.0.0.1", EXACT, table) == (Health.SOFT_FAIL, Health.SOFT_FAIL)


def test_fifty_checks_on_one_socket_each_see_their_own_listener_now(namespace):
    ports = range(8400, 8450)
    sockets = {port: listen(socket.AF_INET, "127.0.0.1", port) for port in ports}
    for sock in sockets.values():
        namespace.enter_context(sock)
    table = ListenerTable()
    checks = {
        port: build_check(f"l{port}", ListeningCheck(type="listening", port=port), listeners=table)
        for port in ports
    }
    assert {check.probe_now().health for check in checks.values()} == {Health.OK}
    closed = set(list(ports)[::5])
    for port in closed:
        sockets[port].close()
    hard = {port for port, check in checks.items() if check.probe_now().health is Health.HARD_FAIL}
    assert hard == closed
    assert table.lookups == 2 * len(checks)
