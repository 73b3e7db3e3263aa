"""A few hundred VIPs on every LB node: the lab converges, and a HAProxy kill takes the node out
of the router's FIB for every one of them; HAProxy restarted, it is back for every one (root).

default.yaml with its one VIP made 300 (lab/scale.with_vip_copies). The FIB is read with one
route dump per poll (netns.fib_table); the figures belong to the bench, these bounds only prove
the mechanism at this scale on a loaded machine.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.lab.observe.routers import prefixes_via
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.scale import with_vip_copies

pytestmark = pytest.mark.root
DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
COPIES = 300
NODE, ROUTER = "lb1", "r1"


def _uses_node(lab, gateway: str) -> set[str]:
    """The VIPs whose route on ROUTER still has `gateway` among its next hops."""
    return prefixes_via(lab.namespace(ROUTER), [v.address for v in lab.topology.vips], gateway)


def test_300_vips_converge_and_a_haproxy_kill_takes_the_node_out_for_all_of_them(make_lab_tag):
    from anycast_ctl.lab.topology_up import Lab

    topology = with_vip_copies(load_topology(DEFAULT), COPIES)
    lab = Lab.up(topology, tag=make_lab_tag("acx-kv"), timeout=60)
    try:
        gateway = str(lab.plan.interface(NODE, ROUTER).ipv4.ip)
        every = {v.address for v in topology.vips}
        serving = _uses_node(lab, gateway)  # converged: the node serves all of them
        assert serving == every, f"{len(every - serving)} VIPs not via {NODE}: {lab.converged()}"
        killed = time.monotonic()
        os.kill(lab.daemon(NODE, "haproxy").pid, signal.SIGKILL)
        wait_for(lambda: not _uses_node(lab, gateway), 10, interval=0.05, what="all withdrawn")
        out_s = time.monotonic() - killed
        lab.start_haproxy(NODE)
        restarted = time.monotonic()
        wait_for(lambda: _uses_node(lab, gateway) == every, 30, interval=0.1, what="all back")
        back_s = time.monotonic() - restarted
        print(
            f"\n{COPIES} VIPs: up in {lab.bringup_seconds:.1f}s; HAProxy kill -> {NODE} out of "
            f"{ROUTER}'s FIB for all in {out_s:.2f}s (polled); back in {back_s:.1f}s; "
            f"load {os.getloadavg()[0]:.1f}"
        )
    finally:
        lab.down()
