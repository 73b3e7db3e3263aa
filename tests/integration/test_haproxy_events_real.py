"""A dead HAProxy is an event: the agent withdraws within tens of ms, not at its next tick.

A real HAProxy 2.6 (foreground, its stats socket in tmp_path) and the agent runtime in this
process with ExaBGP replaced by an in-memory pipe that acks every line. The check interval is
2 s, so a poll could take up to 2 s to notice; the death watch on the stats socket must do it
in well under one interval. HAProxy is killed by its pid.
"""

from __future__ import annotations

import asyncio
import os
import signal
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

from anycast_ctl.agent.exabgp import NLRI_PER_LINE
from anycast_ctl.lab.net.host_ports import free_port

pytestmark = pytest.mark.skipif(not os.access(HAPROXY, os.X_OK), reason=f"{HAPROXY} not installed")

INTERVAL = 2.0
N_VIPS = 300


def _prefixes(lines, verb: str) -> int:
    """How many prefixes the `verb` lines among (time, line) pairs carry."""
    return sum(len(ln.split(" nlri ")[1].split()) for _, ln in lines if ln.startswith(verb))


BOUND = 0.25  # s from SIGKILL to the withdraw written; a poll would take up to INTERVAL


async def scenario(tmp_path) -> dict:
    stats = tmp_path / "admin.sock"
    live = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    front = free_port()
    (tmp_path / "haproxy.cfg").write_text(
        haproxy_config(stats, one_frontend(front, live.sockets[0].getsockname()[1]))
    )
    (tmp_path / "node.yaml").write_text(
        node_config(
            tmp_path,
            checks={
                "haproxy": f"{{type: haproxy, socket: {stats}, frontend: fe, backend: be}}",
                "tcp": f"{{type: tcp, port: {front}}}",
            },
            vips=[(f"10.77.{i // 250}.{i % 250 + 1}", ["haproxy", "tcp"]) for i in range(N_VIPS)],
            interval=INTERVAL,
        )
    )
    try:
        async with haproxy_and_agent(tmp_path, f"acx-hev{os.getpid()}") as (
            runtime,
            exabgp,
            haproxy,
        ):
            lines_per_change = -(-N_VIPS // NLRI_PER_LINE)
            await until(lambda: _prefixes(exabgp.lines, "announce") >= N_VIPS, 10)
            announced = [ln for _, ln in exabgp.lines if ln.startswith("announce")]
            # one tick, as few lines as the line cap allows: the VIPs share their attributes
            assert len(announced) == lines_per_change
            assert _prefixes(exabgp.lines, "announce") == N_VIPS
            fetches = runtime.observer.sources[stats].fetches
            assert fetches == 1  # every VIP's check read the socket once, together
            await asyncio.sleep(0.3)  # well inside the tick: the next poll is ~1.7 s away
            seen = len(exabgp.lines)
            killed = time.monotonic()
            haproxy.send_signal(signal.SIGKILL)
            await until(lambda: _prefixes(exabgp.lines[seen:], "withdraw") >= N_VIPS, INTERVAL)
            burst = exabgp.lines[seen : seen + lines_per_change]
            assert all(ln.startswith("withdraw attributes nlri ") for _, ln in burst), burst
            assert _prefixes(burst, "withdraw") == N_VIPS
            at = burst[-1][0]  # the last VIP's withdraw written
            assert runtime.observer.sources[stats].fetches == fetches  # no tick ran in between
            detail = runtime.results["haproxy"].detail
            return {"ms": (at - killed) * 1000, "detail": detail}
    finally:
        live.close()


@pytest.mark.root
def test_a_killed_haproxy_is_withdrawn_at_once_not_at_the_next_tick(tmp_path):
    outcome = asyncio.run(scenario(tmp_path))
    print(f"\nHAProxy SIGKILL -> withdraw of {N_VIPS} VIPs written in {outcome['ms']:.1f} ms")
    assert outcome["ms"] < BOUND * 1000, outcome
    assert outcome["detail"].startswith("connection refused: "), outcome
