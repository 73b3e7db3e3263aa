"""Second chance run by the agents (real FRR, ExaBGP, HAProxy and agents on default.yaml):
the table the agents load keeps long-lived connections through a drain, and it does not
outlive its agent (SIGTERM stop, or death by SIGKILL: the lifeline guardian removes it).

The lab's LB nodes have no routes to each other yet; the test adds host routes through r1
(the underlay), as tests/integration/test_chance_forwarding.py does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from anycast_ctl.agent.chance_metrics import ChanceCollector
from anycast_ctl.chance import apply as chance
from anycast_ctl.chance.metrics_view import ChanceView
from anycast_ctl.lab.experiments.longlived import LongLived
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.topology_up import Lab

pytestmark = pytest.mark.root
DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
# The default topology with an IPv6 VIP (web6) beside the IPv4 one.
DUAL_STACK = Path(__file__).resolve().parents[1] / "golden" / "chance" / "dual-stack.yaml"
CLI = str(Path(sys.executable).with_name("anycast-ctl"))
LBS = ("lb1", "lb2", "lb3")


def status(lab: Lab, lb: str) -> dict[str, Any]:
    done = subprocess.run(
        [CLI, "status", "--config", str(lab.node_config_path(lb)), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return json.loads(done.stdout) if done.returncode == 0 else {}


def chance_of(lab: Lab, lb: str) -> dict[str, Any]:
    return dict(status(lab, lb).get("second_chance", {}))


def forwarded_metric(lab: Lab, lb: str, peer: str) -> float:
    """anycast_second_chance_forwarded_packets_total{peer} as the agent's metrics would show
    it: the same collector, reading the node's nft counters (the lab serves no metrics)."""
    view = ChanceView({}, loaded=True, forwarding=True, generation=0, age=None)
    collector = ChanceCollector(lambda: view, lambda: chance.read_counters(lab.namespace(lb)))
    for family in collector.collect():
        for sample in family.samples:
            if sample.name == "anycast_second_chance_forwarded_packets_total" and sample.labels == {
                "peer": peer
            }:
                return sample.value
    return 0.0


def route_between_lbs(lab: Lab) -> None:
    """Host routes between the LB nodes' underlay addresses, through r1."""
    plan = lab.topology.address_plan()
    for lb in LBS:
        gateway = str(plan.interface("r1", lb).ipv4.ip)
        for peer in LBS:
            if peer != lb:
                address = str(plan.interface(peer, "r1").ipv4.ip)
                subprocess.run(
                    ["ip", "-n", lab.namespace(lb), "route", "replace", address, "via", gateway],
                    check=True,
                    timeout=30,
                )


def all_live(lab: Lab) -> bool:
    views = [chance_of(lab, lb) for lb in LBS]
    return all(
        v.get("table_loaded") and set(v.get("peers", {}).values()) == {"live"} for v in views
    )


def drain(lab: Lab, lb: str) -> None:
    """`anycast-ctl drain` of lb's agent, as an operator runs it; its stderr on failure."""
    drained = subprocess.run(
        [CLI, "drain", "--config", str(lab.node_config_path(lb)), "--reason", "test"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert drained.returncode == 0, drained.stderr


def agent_pid(exabgp_pid: int) -> int:
    children = Path(f"/proc/{exabgp_pid}/task/{exabgp_pid}/children").read_text().split()
    for pid in children:
        if "agent" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return int(pid)
    raise AssertionError(f"no agent under ExaBGP {exabgp_pid}")


def test_moved_connections_survive_a_drain_and_the_table_dies_with_its_agent(
    lab_tag: str,
) -> None:
    lab = Lab.up(DEFAULT, tag=lab_tag, timeout=90)
    try:
        route_between_lbs(lab)
        wait_for(lambda: all_live(lab), 30, what="every agent's table loaded and its peers live")
        held = LongLived(lab, count=40, first_port=23000, run_id="chance").start()
        before = forwarded_metric(lab, "lb2", "lb1")

        drain(lab, "lb1")
        wait_for(lambda: "lb1" not in lab.fib_nexthops("r1", "web"), 10, what="lb1 withdrawn")
        wait_for(
            lambda: chance_of(lab, "lb2").get("peers", {}).get("lb1") == "drained",
            5,
            what="lb2 sees lb1 drained",
        )
        # lb1's connections now reach lb2 (the routers' hash), which sends them to lb1.
        wait_for(
            lambda: (
                chance_of(lab, "lb2").get("forwarded", 0) > 0
                and chance_of(lab, "lb1").get("arrived", 0) > 0
            ),
            10,
            what="moved packets forwarded by lb2 and arriving at lb1",
        )
        wait_for(
            lambda: forwarded_metric(lab, "lb2", "lb1") > before,
            10,
            what="lb2's forwarded-packets metric for peer lb1 rising",
        )
        assert chance.read_counters(lab.namespace("lb1")).arrived.packets > 0
        conns = held.stop()
        opened = [c for c in conns if c.opened is not None]
        on_lb1 = [c for c in opened if c.lb == "lb1"]
        assert len(opened) >= 36 and on_lb1, [c.lb for c in opened]
        broken = [(c.lb, c.error) for c in opened if c.broken is not None]
        assert broken == [], broken

        # Stopped on purpose (SIGTERM, as systemctl stop): the agent removes its table.
        assert chance.present(lab.namespace("lb2"))
        daemons.stop(lab.daemon("lb2", "exabgp"), signal.SIGTERM, timeout=15)
        wait_for(lambda: not chance.present(lab.namespace("lb2")), 15, what="lb2's table gone")

        # Killed: the guardian removes it.
        assert chance.present(lab.namespace("lb1"))
        os.kill(agent_pid(lab.daemon("lb1", "exabgp").pid), signal.SIGKILL)
        wait_for(lambda: not chance.present(lab.namespace("lb1")), 15, what="lb1's table gone")
    finally:
        lab.down()


def test_a_dual_stack_agent_forwards_moved_ipv6_connections_through_its_ip6_table(
    lab_tag: str,
) -> None:
    """`render node` of a dual-stack topology gives each agent its IPv6 VIP: the agent loads
    an ip6 table beside the ip one, and a drain of lb1 breaks none of its IPv6 connections."""
    lab = Lab.up(DUAL_STACK, tag=lab_tag, timeout=90)
    try:
        route_between_lbs(lab)
        wait_for(lambda: all_live(lab), 30, what="every agent's table loaded and its peers live")
        assert all(chance_of(lab, lb)["predicted"] for lb in LBS)  # owners from the topology
        vip6 = str(lab.topology.vip("web6").ip)
        for lb in LBS:
            table = subprocess.run(
                ["ip", "netns", "exec", lab.namespace(lb), "nft", "list", "table", "ip6",
                 "anycast_chance"],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout  # fmt: skip
            assert f"{vip6} . 443" in table, (lb, table)
        held = LongLived(lab, count=40, first_port=23100, run_id="chance6").start()
        drain(lab, "lb1")
        wait_for(lambda: "lb1" not in lab.fib_nexthops("r1", "web6"), 10, what="web6 withdrawn")
        wait_for(
            lambda: forwarded_metric(lab, "lb2", "lb1") + forwarded_metric(lab, "lb3", "lb1") > 0,
            10,
            what="moved packets forwarded to lb1",
        )
        conns = held.stop()
        opened = [c for c in conns if c.opened is not None]
        ipv6_on_lb1 = [c for c in opened if c.lb == "lb1" and ":" in c.dst]
        assert len(opened) >= 36 and ipv6_on_lb1, [(c.lb, c.dst) for c in opened]
        broken = [(c.lb, c.dst, c.error) for c in opened if c.broken is not None]
        assert broken == [], broken
    finally:
        lab.down()
