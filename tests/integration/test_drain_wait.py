"""`drain --wait` on a real lab node (FRR, ExaBGP, agent, HAProxy on default.yaml): the agent
counts the established connections to its VIP in its own namespace (`ss`), and the command
returns only when none are left, or exits 1 at its timeout saying how many are."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.topology_up import Lab

pytestmark = pytest.mark.root
DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
CLI = str(Path(sys.executable).with_name("anycast-ctl"))
VIP = "192.0.2.10"
PORT = 24001

# One connection to the VIP inside the node: a listener on VIP:PORT, a client bound to the
# node's underlay address (so only the accepted end has the VIP as its local address). Held
# until stdin closes.
HOLDER = textwrap.dedent(
    """
    import socket, sys
    vip, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = socket.create_server((vip, port))
    client = socket.create_connection((vip, port), source_address=(source, 0))
    accepted, _ = server.accept()
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def anycast_ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60)


def test_drain_wait_times_out_while_a_connection_is_held_and_returns_once_it_closes(
    lab_tag: str,
) -> None:
    lab = Lab.up(DEFAULT, tag=lab_tag, timeout=90)
    holder = None
    try:
        node_yaml = str(lab.node_config_path("lb1"))
        source = str(lab.plan.interface("lb1", "r1").ipv4.ip)
        holder = subprocess.Popen(
            ["ip", "netns", "exec", lab.namespace("lb1"), sys.executable, "-c", HOLDER,
             VIP, str(PORT), source],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        status = json.loads(anycast_ctl("status", "--config", node_yaml, "--json").stdout)
        assert status["connections_left"] == 1, status
        assert status["connections_left_by_vip"] == {f"{VIP}/32": 1}

        held = anycast_ctl(
            "drain", "--config", node_yaml, "--reason", "t", "--wait", "--timeout", "2"
        )
        assert held.returncode == 1, held.stderr
        assert held.stderr.splitlines()[-1].endswith(": 1 connection left"), held.stderr
        wait_for(lambda: "lb1" not in lab.fib_nexthops("r1", "web"), 10, what="lb1 withdrawn")

        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
        done = anycast_ctl(
            "drain", "--config", node_yaml, "--reason", "t", "--wait", "--timeout", "20", "--json"
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["connections_left"] == 0 and summary["timed_out"] is False
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait(10)
        lab.down()
