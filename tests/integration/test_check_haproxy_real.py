"""The HAProxy check against a real HAProxy 2.6 on 127.0.0.1 (no root needed).

HAProxy runs in the foreground (-db) with a generated config: a TCP frontend, a backend with
one live server (an asyncio listener in this test) and one closed port, fast health checks,
and an admin-level stats socket in tmp_path. It is killed by its pid in a finally.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from anycast_ctl.agent.checks import build_check, run_check
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import HaproxyCheck
from anycast_ctl.lab.net.host_ports import free_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = pytest.mark.skipif(not os.access(HAPROXY, os.X_OK), reason=f"{HAPROXY} not installed")

CONFIG = """\
global
    stats socket {socket} mode 600 level admin
defaults
    mode tcp
    timeout connect 500ms
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{frontend_port}
    default_backend be
backend be
    server live 127.0.0.1:{live_port} check inter 100ms fall 1 rise 1
    server dead 127.0.0.1:{dead_port} check inter 100ms fall 1 rise 1
"""


async def until(check, accept, within: float = 5.0):
    """Run the check until `accept(result)` or the deadline; bounded poll, says what it last saw."""
    deadline = time.monotonic() + within
    while True:
        result = await run_check(check, 1.0)
        if accept(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not accepted within {within}s; last result: {result}")
        await asyncio.sleep(0.05)


async def admin(socket_path, command: str) -> str:
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    writer.write(command.encode() + b"\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.decode()


async def _close(reader, writer):
    writer.close()


async def scenario(tmp_path) -> None:
    stats = tmp_path / "admin.sock"
    live = await asyncio.start_server(_close, "127.0.0.1", 0)
    dead = socket.socket()  # bound, never listening: connections to it are refused
    dead.bind(("127.0.0.1", 0))
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(
            socket=stats,
            frontend_port=free_port(),
            live_port=live.sockets[0].getsockname()[1],
            dead_port=dead.getsockname()[1],
        )
    )
    log = (tmp_path / "haproxy.log").open("w")
    env = {**os.environ, "ANYCAST_CTL_LAB": f"acx-chk{os.getpid()}"}  # tagged, like lab daemons
    haproxy = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
    )

    def spec(minimum):
        return build_check(
            "lb",
            HaproxyCheck(
                type="haproxy", socket=stats, frontend="fe", backend="be", min_servers_up=minimum
            ),
        )

    try:
        # HAProxy starts its servers UP; the dead one goes DOWN after its first check.
        need_two = await until(spec(2), lambda r: r.health is Health.SOFT_FAIL and r.extra)
        assert need_two.detail == "be: 1/2 servers UP, need 2"
        need_one = await run_check(spec(1), 1.0)
        assert (need_one.health, need_one.detail) == (
            Health.OK,
            "frontend fe OPEN, be: 1/2 servers UP",
        )
        assert need_one.extra == {"servers_up": 1, "servers_total": 2}

        assert (await admin(stats, "disable frontend fe")).strip() == ""
        paused = await run_check(spec(1), 1.0)
        # HAProxy 2.6 reports a disabled frontend as PAUSED (a stopped one as STOP).
        assert paused.health is Health.SOFT_FAIL
        assert re.fullmatch(r"frontend fe is (PAUSED|STOP)", paused.detail), paused.detail
        await admin(stats, "enable frontend fe")
        assert (await run_check(spec(1), 1.0)).health is Health.OK

        haproxy.send_signal(signal.SIGKILL)
        haproxy.wait(timeout=5)
        gone = await run_check(spec(1), 1.0)
        assert gone.health is Health.HARD_FAIL
        # A killed HAProxy leaves its socket file behind: nobody listens on it.
        assert gone.detail == f"connection refused: {stats}"
        stats.unlink()
        absent = await run_check(spec(1), 1.0)
        assert (absent.health, absent.detail) == (Health.HARD_FAIL, f"no such file: {stats}")
    finally:
        if haproxy.poll() is None:
            haproxy.kill()  # by its pid, never by name
            haproxy.wait(timeout=5)
        log.close()
        live.close()
        dead.close()


def test_haproxy_check_against_real_haproxy(tmp_path):
    asyncio.run(scenario(tmp_path))
