"""Long-lived connections through failures, on real routers (root): what each event breaks,
against the simulator's prediction from the kernel's next-hop order before and after.

The LB nodes are full TCP proxies, so a connection breaks exactly when a router moves its flow
to another node. When a spine dies, the leaves send its flows to the other spine: if both
spines hash with one seed (topologies/leaf-spine.yaml) the other spine picks the same LB node
for each and nothing breaks; with a seed per spine (leaf-spine-per-spine-seeds.yaml) 7 of 8 of
them land elsewhere, and those connections break, as predicted. Each test brings up its own
lab under the `lab_tag` fixture; one run per scenario, 200 long-lived connections.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from anycast_ctl.lab.experiments.failover_report import Measurement
from anycast_ctl.lab.experiments.failover_run import Runner
from anycast_ctl.lab.experiments.failover_settings import Settings
from anycast_ctl.lab.experiments.scenario_names import Scenario
from anycast_ctl.lab.experiments.scenarios import deploy
from anycast_ctl.lab.observe.fibset import FibSet

pytestmark = pytest.mark.root
TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
HELD = 200


def without_second_chance(topology: str, directory: Path) -> Path:
    """A copy of a shipped topology with the agents' second chance off: what plain
    hash-threshold ECMP breaks is what these tests measure (test_lab_second_chance.py and
    test_chance_agent.py prove the forwarding)."""
    data = yaml.safe_load((TOPOLOGIES / f"{topology}.yaml").read_text())
    data["second_chance"] = {"enabled": False}
    copy = directory / f"{topology}.yaml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def measure(
    lab_tag: str, tmp_path: Path, topology: str, plan: list[tuple[Scenario, str]]
) -> list[Measurement]:
    from anycast_ctl.lab.experiments.baseline import Implementation
    from anycast_ctl.lab.topology_up import Lab

    lab = Lab.up(without_second_chance(topology, tmp_path), tag=lab_tag, timeout=90)
    try:
        dep = deploy(lab, Implementation.ANYCAST)
        settings = Settings(runs=1, rate=10, probe_flows=40, long_lived=HELD)
        runner = Runner(lab, settings)
        with FibSet(lab) as fibs:
            return [runner.run(dep, scenario, node, 0, fibs) for scenario, node in plan]
    finally:
        lab.down()


def tolerance(m: Measurement) -> int:
    """Connections caught in the moment itself (a retransmission lost twice) may differ."""
    assert m.long_lived is not None
    return max(3, round(0.03 * m.long_lived))


def assert_broken_as_predicted(m: Measurement) -> None:
    assert m.long_lived is not None and m.long_lived >= 0.9 * HELD, m
    assert m.long_lived_broken is not None and m.long_lived_predicted_broken is not None, m
    assert abs(m.long_lived_broken - m.long_lived_predicted_broken) <= tolerance(m), m


def test_spine_kill_with_one_seed_for_both_spines_breaks_almost_no_connection(lab_tag, tmp_path):
    (m,) = measure(lab_tag, tmp_path, "leaf-spine", [(Scenario.ROUTER_KILL, "s1")])
    assert m.withdraw_s is not None and m.recover_s is not None, m
    assert m.long_lived is not None and m.long_lived >= 0.9 * HELD, m
    assert m.long_lived_predicted_broken == 0, m
    assert m.long_lived_broken is not None and m.long_lived_broken <= 2, m
    assert m.moved == 0 and m.moved_mismatch == 0, m


def test_spine_kill_with_a_seed_per_spine_breaks_what_the_simulator_predicted(lab_tag, tmp_path):
    (m,) = measure(lab_tag, tmp_path, "leaf-spine-per-spine-seeds", [(Scenario.ROUTER_KILL, "s1")])
    assert_broken_as_predicted(m)
    # Half the flows cross s1 and 7 of 8 of those are re-hashed elsewhere: about 44 %.
    assert m.long_lived_predicted_broken is not None and m.long_lived is not None
    assert 0.3 * m.long_lived <= m.long_lived_predicted_broken <= 0.6 * m.long_lived, m
    assert m.long_lived_broken_collateral == m.long_lived_broken, m  # no LB node acted on


def test_drain_haproxy_kill_and_router_drain_break_as_predicted_on_hybrid(lab_tag, tmp_path):
    plan = [(Scenario.DRAIN, "lb1"), (Scenario.HAPROXY_KILL, "lb1"), (Scenario.ROUTER_DRAIN, "r1")]
    drain, kill, router_drain = measure(lab_tag, tmp_path, "hybrid", plan)
    for m in (drain, kill):
        assert_broken_as_predicted(m)
        # lb1's third goes, and hash-threshold ECMP moves some of the others' flows too.
        assert m.long_lived_predicted_broken and m.long_lived_broken_collateral, m
    assert router_drain.long_lived_predicted_broken == 0, router_drain
    assert router_drain.long_lived_broken is not None and router_drain.long_lived_broken <= 2
    assert router_drain.spurious == 0, router_drain.note
