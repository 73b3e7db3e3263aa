"""The stats socket removed while HAProxy runs is an event: withdrawn at once, not a tick later.

A real HAProxy 2.6 (foreground, its stats socket in tmp_path) and the agent runtime in this
process, ExaBGP replaced by an in-memory pipe that acks every line (as in
test_haproxy_events_real.py). The interval is 2 s; the socket file is unlinked while HAProxy
keeps running and keeps the agent's connection open, so only the directory watch
(agent/path_watch.py) can tell before the next tick.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from haproxy_rig import (
    HAPROXY,
    haproxy_and_agent,
    haproxy_config,
    node_config,
    one_frontend,
    until,
)

from anycast_ctl.lab.net.host_ports import free_port

pytestmark = pytest.mark.skipif(not os.access(HAPROXY, os.X_OK), reason=f"{HAPROXY} not installed")

INTERVAL = 2.0
BOUND = 0.25  # s from the unlink to the withdraw written; a poll would take up to INTERVAL
VIPS = ["10.78.0.1", "10.78.0.2", "10.78.0.3"]


def withdrawn(lines, since: int) -> set[str]:
    return {
        word.split("/")[0]
        for _, line in lines[since:]
        if line.startswith("withdraw")
        for word in line.split(" nlri ")[1].split()
    }


async def scenario(tmp_path) -> dict:
    stats = tmp_path / "admin.sock"
    live = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    (tmp_path / "haproxy.cfg").write_text(
        haproxy_config(stats, one_frontend(free_port(), live.sockets[0].getsockname()[1]))
    )
    (tmp_path / "node.yaml").write_text(
        node_config(
            tmp_path,
            checks={"haproxy": f"{{type: haproxy, socket: {stats}, frontend: fe, backend: be}}"},
            vips=[(vip, ["haproxy"]) for vip in VIPS],
            interval=INTERVAL,
        )
    )
    tag = f"acx-hrm{os.getpid()}"
    try:
        async with haproxy_and_agent(tmp_path, tag) as (runtime, exabgp, haproxy):
            await until(lambda: any(ln.startswith("announce") for _, ln in exabgp.lines), 10)
            fetches = runtime.observer.sources[stats].fetches
            await asyncio.sleep(0.3)  # well inside the tick: the next poll is ~1.7 s away
            seen = len(exabgp.lines)
            removed = time.monotonic()
            stats.unlink()
            await until(lambda: withdrawn(exabgp.lines, seen) == set(VIPS), INTERVAL)
            at = max(t for t, ln in exabgp.lines[seen:] if ln.startswith("withdraw"))
            return {
                "ms": (at - removed) * 1000,
                "ticks": runtime.observer.sources[stats].fetches - fetches,
                "haproxy_running": haproxy.poll() is None,
                "detail": runtime.results["haproxy"].detail,
            }
    finally:
        live.close()


@pytest.mark.root
def test_a_removed_stats_socket_is_withdrawn_at_once_while_haproxy_runs(tmp_path):
    outcome = asyncio.run(scenario(tmp_path))
    print(
        f"\nstats socket unlinked -> withdraw of {len(VIPS)} VIPs written in {outcome['ms']:.1f} ms"
    )
    assert outcome["haproxy_running"], outcome  # no death: only the file went
    assert outcome["ticks"] == 0, outcome  # no tick ran in between: the event did it
    assert outcome["ms"] < BOUND * 1000, outcome
    assert "no such file" in outcome["detail"], outcome
