"""router-kill on an IPv6 VIP (root): topologies/hybrid.yaml made dual-stack
(an IPv6 VIP beside the IPv4 one, an IPv6 prefix per client), real FRR, HAProxy, ExaBGP and
the agent. The upstream router must stop using the edge router for both VIPs and take it back,
and the probe flows must land as predicted (none moves: the edges share a seed and an LB order).

Not asserted yet: on this kernel some IPv6 long-lived connections stall for over 3 s through a
router kill (12 of 40 in one run, every one IPv6, none reset, on the same LB node), while the
IPv4 ones hold; what stalls them is not found yet. Nor is router-drain here: u1 keeps using
the drained r1 for the IPv6 VIP (its IPv4 route goes), also not understood yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.lab.experiments.baseline import Implementation
from anycast_ctl.lab.experiments.failover import Runner, Settings
from anycast_ctl.lab.experiments.scenarios import Scenario, deploy
from anycast_ctl.lab.observe.fibset import FibSet
from anycast_ctl.lab.topology_up import Lab

pytestmark = pytest.mark.root
HYBRID = Path(__file__).resolve().parents[2] / "topologies" / "hybrid.yaml"


def dual_stack_hybrid(tmp_path: Path) -> Path:
    text = HYBRID.read_text().replace("name: hybrid", "name: hybrid6")
    for n in (1, 2):
        v4 = f"prefixes: [198.18.{n}.0/24]"
        assert text.count(v4) == 1
        text = text.replace(v4, f'prefixes: [198.18.{n}.0/24, "2001:db8:c{n}::/64"]')
    assert text.count("vips: [web]}") == 3
    text = text.replace("vips: [web]}", "vips: [web, web6]}")
    web = "  - {name: web, address: 192.0.2.10, port: 443, backends: [be1, be2]}\n"
    assert text.count(web) == 1
    text = text.replace(
        web, web + '  - {name: web6, address: "2001:db8:f::10", port: 443, backends: [be1, be2]}\n'
    )
    path = tmp_path / "hybrid6.yaml"
    path.write_text(text)
    return path


def test_router_kill_on_an_ipv6_vip(lab_tag, tmp_path):
    lab = Lab.up(dual_stack_hybrid(tmp_path), tag=lab_tag, timeout=90)
    try:
        dep = deploy(lab, Implementation.ANYCAST)
        runner = Runner(lab, Settings(runs=1, rate=20, probe_flows=60, long_lived=40))
        assert any(":" in f.five_tuple[1] for f in runner.flows), "no IPv6 probe flow"
        with FibSet(lab) as fibs:
            measured = [runner.run(dep, Scenario.ROUTER_KILL, "r1", 0, fibs)]
    finally:
        lab.down()
    for m in measured:
        assert set(m.per_router) == {"u1/web", "u1/web6"}, m
        assert m.withdraw_s is not None and m.withdraw_s < 5.0, m
        assert m.recover_s is not None and m.recover_s < 20.0, m
        assert m.moved == 0 and m.moved_mismatch == 0, m
        assert m.spurious == 0, m.note
