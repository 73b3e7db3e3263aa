"""The rendered iproute2/sysctl commands apply cleanly in real namespaces and route as intended.

Namespaces are named `rndr-<pid>-<node>` and removed even when the test fails.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.hostnet import setup_commands

pytestmark = pytest.mark.root
TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "two-routers.yaml"


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{shlex.join(argv)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def namespaces() -> Iterator[list[str]]:
    made: list[str] = []
    try:
        yield made
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def test_setup_commands_apply_and_route_replies_to_each_client(namespaces) -> None:
    topo = load_topology(TOPOLOGY)
    plan = topo.address_plan()
    ns = {node: f"rndr-{os.getpid()}-{node}" for node in plan.nodes}
    for name in ns.values():
        _run("ip", "netns", "add", name)
        namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
    for link in topo.links:
        a, b = link.a, link.b
        _run(
            "ip",
            "link",
            "add",
            f"eth-{b}",
            "netns",
            ns[a],
            "type",
            "veth",
            "peer",
            "name",
            f"eth-{a}",
            "netns",
            ns[b],
        )
        _run("ip", "-n", ns[a], "link", "set", f"eth-{b}", "up")
        _run("ip", "-n", ns[b], "link", "set", f"eth-{a}", "up")
    for node in plan.nodes:
        for cmd in setup_commands(topo, node, plan):
            _run("ip", "netns", "exec", ns[node], *shlex.split(cmd))

    # lb1 answers c2 through r2 (r1 does not know c2's prefix), and reaches be2 over its link.
    assert "dev eth-r2" in _run("ip", "-n", ns["lb1"], "route", "get", "198.18.2.77")
    assert "dev eth-r1" in _run("ip", "-n", ns["lb1"], "route", "get", "198.18.1.77")
    assert "dev eth-be2" in _run(
        "ip", "-n", ns["lb1"], "route", "get", str(plan.nodes["be2"].loopback_v4.ip)
    )
    # The LB nodes reach each other's underlay address through r1 over 1550-byte links.
    lb2_underlay = str(plan.interface("lb2", "r1").ipv4.ip)
    assert "via " + str(plan.interface("r1", "lb1").ipv4.ip) in _run(
        "ip", "-n", ns["lb1"], "route", "get", lb2_underlay
    )
    assert "mtu 1550" in _run("ip", "-n", ns["r1"], "link", "show", "dev", "eth-lb2")
    # c1 owns its whole prefix and leaves through r1 from it.
    assert "local 198.18.1.200 dev lo" in _run("ip", "-n", ns["c1"], "route", "get", "198.18.1.200")
    assert "src 198.18.1.1" in _run("ip", "-n", ns["c1"], "route", "get", "192.0.2.10")
    got = _run(
        "ip", "netns", "exec", ns["r2"], "sysctl", "-n", "net.ipv4.fib_multipath_hash_seed"
    ).strip()
    assert got == str(topo.hashing_for("r2").seed)
