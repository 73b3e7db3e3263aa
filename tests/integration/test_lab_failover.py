"""Failover and drain experiments on the default topology, real daemons, generous bounds (root).

Each test brings up its own lab under the `lab_tag` fixture, whose teardown removes it and
asserts nothing is left, even when the test fails. The figures belong to `make bench`
(bench/bench_failover.py); these bounds only prove that the mechanism works end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.lab.experiments.baseline import Implementation, api_for
from anycast_ctl.lab.experiments.failover import Runner, Settings
from anycast_ctl.lab.experiments.scenarios import Scenario, deploy
from anycast_ctl.lab.observe.fibset import FibSet

pytestmark = pytest.mark.root
DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"


def run_once(
    lab_tag: str, scenario: Scenario, implementation=Implementation.ANYCAST, after=None, **settings
):
    from anycast_ctl.config.topology import load_topology
    from anycast_ctl.lab.topology_up import Lab

    api = api_for(implementation, load_topology(DEFAULT))
    lab = Lab.up(DEFAULT, tag=lab_tag, timeout=60, api=api)
    try:
        dep = deploy(lab, implementation)  # already running it: nothing restarted
        runner = Runner(lab, Settings(runs=1, rate=20, probe_flows=60, **settings))
        with FibSet(lab) as fibs:
            measured = runner.run(dep, scenario, "lb1", 0, fibs)
        if after is not None:
            after(lab)
        return measured
    finally:
        lab.down()


def assert_moved_as_predicted(m) -> None:
    assert m.moved is not None and m.moved > 0, m
    assert m.moved_mismatch == 0, f"flows moved unlike the simulator said: {m}"


def test_haproxy_kill_leaves_every_fib_within_2s_and_returns_after_restart(lab_tag):
    m = run_once(lab_tag, Scenario.HAPROXY_KILL)
    assert m.withdraw_s is not None and m.withdraw_s < 2.0, m
    assert m.recover_s is not None and m.recover_s < 10.0, m
    assert_moved_as_predicted(m)
    assert m.spurious == 0, m.note


def test_drain_withdraws_and_undrain_brings_the_node_back(lab_tag):
    m = run_once(lab_tag, Scenario.DRAIN)
    assert m.withdraw_s is not None and m.withdraw_s < 5.0, m  # includes the CLI's own start-up
    assert m.recover_s is not None and m.recover_s < 10.0, m
    assert_moved_as_predicted(m)
    assert m.spurious == 0, m.note
    # The drained node keeps serving until it has left every FIB, so nobody is refused; only a
    # connection in flight that hash-threshold ECMP re-hashes to another node at that moment
    # (or at the undrain) can break.
    assert m.failed <= 5, m


def test_baseline_healthcheck_also_withdraws_a_killed_haproxy(lab_tag):
    m = run_once(lab_tag, Scenario.HAPROXY_KILL, Implementation.EXABGP_FAST)
    assert m.implementation == "exabgp-fast"
    assert m.withdraw_s is not None and m.withdraw_s < 3.0, m
    assert m.recover_s is not None and m.recover_s < 15.0, m


def test_link_down_withdraws_and_after_link_up_every_lb_serves_again(lab_tag):
    def every_flow_lands_as_predicted(lab):
        result = lab.traffic(90, first_port=21000, timeout=3)
        assert not result.failed(), result.failed()[:3]
        assert set(result.shares()) == {"lb1", "lb2", "lb3"}
        assert result.agreement() == (90, 90)

    m = run_once(lab_tag, Scenario.LINK_DOWN, after=every_flow_lands_as_predicted)
    assert m.withdraw_s is not None and m.withdraw_s < 2.0, m
    assert m.recover_s is not None and m.recover_s < 15.0, m
    assert_moved_as_predicted(m)
