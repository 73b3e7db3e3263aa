"""What the real-HAProxy agent tests share: HAProxy's config head, the node config they run,
and a HAProxy with the agent's runtime beside it.

A HAProxy 2.6 in TCP mode with its admin socket in the test's directory, started in the
foreground by its pid (tagged like lab daemons); the agent runtime in the test's process with
ExaBGP replaced by an in-memory pipe that acks every line (FakeExabgp).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

from anycast_ctl.agent.exabgp_watch import PROBE
from anycast_ctl.agent.runtime import AgentRuntime
from anycast_ctl.agent.speaker import Speaker
from anycast_ctl.config.node import load_node_config

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class FakeExabgp:
    """ExaBGP's side of the agent's pipe: every line acked, route lines kept with their time."""

    def __init__(self):
        self.to_agent = asyncio.StreamReader()
        self.lines: list[tuple[float, str]] = []

    def write(self, text: str):
        for line in text.splitlines():
            if line != PROBE:  # liveness probes are answered, not recorded: tests are on routes
                self.lines.append((time.monotonic(), line))
            self.to_agent.feed_data(b"done\n")

    def flush(self):
        pass


async def until(predicate, within: float):
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def haproxy_and_agent(
    directory: Path, tag: str
) -> AsyncIterator[tuple[AgentRuntime, FakeExabgp, subprocess.Popen]]:
    """HAProxy on `directory`/haproxy.cfg and the agent on `directory`/node.yaml, running until
    the block ends; then the agent stops and HAProxy is killed by its pid, never by name."""
    log = (directory / "haproxy.log").open("w")
    haproxy = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(directory / "haproxy.cfg")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANYCAST_CTL_LAB": tag},
    )
    exabgp = FakeExabgp()
    path = directory / "node.yaml"
    runtime = AgentRuntime(load_node_config(path), path, Speaker(exabgp.to_agent, exabgp))
    agent = asyncio.create_task(runtime.run())
    try:
        yield runtime, exabgp, haproxy
    finally:
        runtime.stopping.set()
        await asyncio.wait_for(agent, 10)
        if haproxy.poll() is None:
            haproxy.kill()
        haproxy.wait(timeout=5)
        log.close()


def haproxy_config(stats: Path, body: str) -> str:
    """A HAProxy config: the admin socket at `stats`, TCP defaults, then `body` (dedented)."""
    head = f"""\
global
    stats socket {stats} mode 600 level admin
defaults
    mode tcp
    timeout connect 500ms
    timeout client 5s
    timeout server 5s
"""
    return head + textwrap.dedent(body)


def one_frontend(front: int, server: int) -> str:
    """The body of a config with one frontend `fe` on 127.0.0.1:`front` and one backend `be`
    whose one server, checked every second, listens on 127.0.0.1:`server`."""
    return f"""\
frontend fe
    bind 127.0.0.1:{front}
    default_backend be
backend be
    server live 127.0.0.1:{server} check inter 1s
"""


def node_config(
    directory: Path,
    *,
    checks: dict[str, str],
    vips: list[tuple[str, list[str]]],
    interval: float,
    extra: str = "",
) -> str:
    """The agent's node.yaml: `checks` name -> flow mapping, each VIP with its check names."""
    lines = [
        "node: lb1",
        "bgp:",
        "  local_as: 65101",
        "  router_id: 10.0.0.2",
        "  neighbors: [{address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}]",
        f"timing: {{interval: {interval}, timeout: 0.5, rise: 1, fall: 2}}",
        "checks:",
        *(f"  {name}: {spec}" for name, spec in checks.items()),
        "vips:",
        *(f"  - {{address: {address}, checks: [{', '.join(names)}]}}" for address, names in vips),
        "loopback: {manage: false}",
        *([extra] if extra else []),
        f"control: {{socket: {directory}/agent.sock, allow_uids: [0]}}",
        f"drain: {{state_file: {directory}/drain.json}}",
    ]
    return "\n".join(lines) + "\n"
