"""The agent end to end: a real FRR router, real ExaBGP running our agent, real
HAProxy, each in its own namespace; every assertion is on the router's kernel FIB or its BGP
tables. Runs on the default topology (r1 spreading the VIP over lb1..lb3); lb1 is the subject.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from anycast_ctl.agent.exabgp import DIALECTS
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.net import daemons, netns
from anycast_ctl.lab.nodes import frr
from anycast_ctl.lab.nodes.common import exabgp_program
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.topology_up import Lab

pytestmark = pytest.mark.root

DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
CLI = str(Path(sys.executable).with_name("anycast-ctl"))
VIP = "192.0.2.10/32"


@pytest.fixture(params=DIALECTS, ids=lambda v: f"exabgp-{v}")
def lab(request, lab_tag):
    """The default lab with ExaBGP 5.0 (this venv's) or 4.2 (`make venv-exabgp42`'s) on every
    LB node; the agent speaks that version's dialect."""
    try:
        exabgp_program(request.param)
    except LabError as exc:  # only the 4.2 venv can be missing; `make test` makes it
        pytest.skip(str(exc))
    return Lab.up(DEFAULT, tag=lab_tag, timeout=60, exabgp=request.param)


def test_each_lb_runs_the_exabgp_version_asked_for(lab):
    exabgp = lab.daemon("lb1", "exabgp")
    expected = exabgp_program(lab.exabgp)
    assert expected in daemons.cmdline(exabgp.pid)
    dialect = yaml.safe_load(lab.node_config_path("lb1").read_text())["exabgp"]["dialect"]
    assert dialect == lab.exabgp


def r1_uses(lab: Lab) -> list[str]:
    return lab.fib_nexthops("r1", "web")


def seconds_until(predicate, timeout: float, interval: float = 0.005) -> float:
    """Bounded poll that returns how long the predicate took to become true."""
    start = time.monotonic()
    wait_for(predicate, timeout, interval=interval)
    return time.monotonic() - start


def anycast_ctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=30)


def test_vip_is_in_the_router_fib_while_haproxy_is_healthy(lab):
    assert set(r1_uses(lab)) == {"lb1", "lb2", "lb3"}
    status = lab.agent_request("lb1", {"op": "status"})
    assert [(v["address"], v["state"], v["announced"]) for v in status["vips"]] == [
        (VIP, "up", True)
    ]


def test_vip_leaves_the_router_fib_within_1s_after_haproxy_is_killed(lab):
    daemons.stop(lab.daemon("lb1", "haproxy"), signal.SIGKILL, timeout=2)
    took = seconds_until(lambda: "lb1" not in r1_uses(lab), timeout=5)
    assert took < 1.0, f"VIP still routed to lb1 {took:.3f}s after HAProxy died"
    print(f"HAProxy SIGKILL -> VIP out of r1's FIB in {took * 1000:.0f} ms")
    assert set(r1_uses(lab)) == {"lb2", "lb3"}  # the healthy nodes keep it
    lab.start_haproxy("lb1")
    wait_for(lambda: "lb1" in r1_uses(lab), 10, what="lb1 back after HAProxy restarts")


def test_drain_withdraws_and_undrain_brings_the_vip_back(lab):
    node_yaml = str(lab.node_config_path("lb1"))
    drained = anycast_ctl("drain", "--config", node_yaml, "--reason", "e2e maintenance")
    assert drained.returncode == 0, drained.stderr
    wait_for(lambda: "lb1" not in r1_uses(lab), 5, what="lb1 withdrawn after drain")
    status = json.loads(anycast_ctl("status", "--config", node_yaml, "--json").stdout)
    assert status["vips"][0]["state"] == "drained"
    assert status["vips"][0]["drain"]["reason"] == "e2e maintenance"
    undrained = anycast_ctl("undrain", "--config", node_yaml)
    assert undrained.returncode == 0, undrained.stderr
    wait_for(lambda: "lb1" in r1_uses(lab), 10, what="lb1 announced again after undrain")


def test_vip_leaves_the_router_fib_after_the_agent_is_sigkilled(lab):
    agent = lab.agent_pid("lb1")
    assert agent is not None
    os.kill(agent, signal.SIGKILL)
    # The lifeline guardian sees the agent die and stops ExaBGP; the session closes.
    took = seconds_until(lambda: "lb1" not in r1_uses(lab), timeout=10)
    assert set(r1_uses(lab)) == {"lb2", "lb3"}
    print(f"agent SIGKILL -> VIP out of r1's FIB in {took * 1000:.0f} ms")


def received_from(lab: Lab, lb: str) -> set[str]:
    address = lab.plan.interface(lb, "r1").ipv4.ip
    table = frr.vtysh_json(
        lab.tag, "r1", f"show bgp ipv4 unicast neighbors {address} received-routes json"
    )
    return set(table.get("receivedRoutes", {}))


def test_a_prefix_not_in_the_node_config_cannot_be_announced(lab):
    node_yaml = lab.node_config_path("lb1")
    # 1. The control socket refuses a VIP the node does not declare.
    refused = anycast_ctl("undrain", "203.0.113.7", "--config", str(node_yaml))
    assert refused.returncode == 2 and "203.0.113.7" in refused.stderr
    # 2. A config smuggling a second command into an attribute is refused on reload (SIGHUP);
    #    the agent keeps the running config and announces nothing new.
    original = node_yaml.read_text()
    node_yaml.write_text(
        original.replace(
            "address: 192.0.2.10/32",
            "address: 192.0.2.10/32\n"
            '  communities: ["65000:1\\nannounce route 203.0.113.0/24 next-hop self"]',
            1,
        )
    )
    os.kill(lab.agent_pid("lb1"), signal.SIGHUP)
    log = lab.dir / "lb1" / "exabgp.log"
    wait_for(
        lambda: "reload refused" in log.read_text(), 5, what="the agent to refuse the bad reload"
    )
    # 3. What lb1 actually sent r1 (Adj-RIB-In, before r1's own prefix filter): only its VIP.
    wait_for(lambda: received_from(lab, "lb1") == {VIP}, 5, what="lb1's announcements")
    assert "lb1" in r1_uses(lab)
    assert netns.fib_routes(lab.namespace("r1"), "203.0.113.0/24") == []


def lb1_paths(lab: Lab) -> list[dict]:
    address = str(lab.plan.interface("lb1", "r1").ipv4.ip)
    table = frr.vtysh_json(lab.tag, "r1", f"show bgp ipv4 unicast {VIP} json")
    return [p for p in table.get("paths", []) if p.get("peer", {}).get("peerId") == address]


def test_graceful_drain_moves_traffic_away_before_the_withdrawal(lab):
    import yaml

    node_yaml = lab.node_config_path("lb1")
    config = yaml.safe_load(node_yaml.read_text())
    config.setdefault("drain", {})["graceful_shutdown_seconds"] = 3
    node_yaml.write_text(yaml.safe_dump(config))
    os.kill(lab.agent_pid("lb1"), signal.SIGHUP)
    log = lab.dir / "lb1" / "exabgp.log"
    wait_for(lambda: "reloaded" in log.read_text(), 5, what="the agent to take the new config")

    # The graceful period starts when the agent takes the drain, somewhere between these two
    # readings (the CLI's own start-up lies between them too, and grows with the host's load).
    before_drain = time.monotonic()
    drained = anycast_ctl("drain", "--config", str(node_yaml), "--reason", "graceful e2e")
    assert drained.returncode == 0, drained.stderr
    after_drain = time.monotonic()
    # RFC 8326 on r1: lb1's path stays in BGP with local-preference 0, so it leaves the ECMP set...
    wait_for(lambda: "lb1" not in r1_uses(lab), 2, what="lb1 out of r1's ECMP set")
    paths = lb1_paths(lab)
    assert paths and paths[0].get("locPrf") == 0, paths
    assert time.monotonic() - after_drain < 2.5
    # ...and is withdrawn only when the 3 s graceful period ends.
    wait_for(
        lambda: lb1_paths(lab) == [], 10, what="lb1's path withdrawn after the graceful period"
    )
    assert time.monotonic() - before_drain >= 2.9
    assert set(r1_uses(lab)) == {"lb2", "lb3"}
