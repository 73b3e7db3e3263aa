"""The second chance's proof under long-lived TLS load (root). With the tables loaded BY THE
LAB (lab/experiments/chance_driver.py, per-flow entries): a drain of lb1 on the default
topology breaks no connection; HAProxy killed on lb1 breaks none of lb2's and lb3's; on
leaf-spine, losing one of eight nodes breaks only that node's own. With THE AGENTS' OWN
tables (heartbeats and the likely-owner chain, no flow lists): HAProxy killed on lb1, run after
run, breaks none of lb2's and lb3's either; on leaf-spine a drain of one of eight breaks none
and a HAProxy kill only that node's own. Without forwarding the same drain breaks about
half (bench/bench_chance.py prints off and the agents' own side by side).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.lab.experiments.failover_report import Measurement
from anycast_ctl.lab.experiments.failover_run import Runner
from anycast_ctl.lab.experiments.failover_settings import Settings
from anycast_ctl.lab.experiments.scenario_names import Scenario
from anycast_ctl.lab.experiments.scenarios import deploy
from anycast_ctl.lab.observe.fibset import FibSet

pytestmark = pytest.mark.root
TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
HELD = 100
AGENT_RUNS = 3  # events in a row: the tables must follow every one, not only the first
AGENT_HELD = 200


def measure(
    lab_tag: str,
    topology: str,
    plan: list[Scenario],
    second_chance: bool | None = True,
    held: int = HELD,
) -> list[Measurement]:
    from anycast_ctl.lab.experiments.baseline import Implementation
    from anycast_ctl.lab.topology_up import Lab

    lab = Lab.up(TOPOLOGIES / f"{topology}.yaml", tag=lab_tag, timeout=90)
    try:
        dep = deploy(lab, Implementation.ANYCAST)
        settings = Settings(
            runs=1, rate=10, probe_flows=40, long_lived=held, second_chance=second_chance
        )
        runner = Runner(lab, settings)
        with FibSet(lab) as fibs:
            return [runner.run(dep, scenario, "lb1", i, fibs) for i, scenario in enumerate(plan)]
    finally:
        lab.down()


def _held(m: Measurement, held: int = HELD) -> None:
    assert m.long_lived is not None and m.long_lived >= 0.9 * held, m
    assert m.withdraw_s is not None, m  # lb1 really left every FIB: flows really moved
    assert m.moved is not None and m.moved > 0, m


def test_default_drain_breaks_nothing_and_haproxy_kill_no_other_nodes_connection(lab_tag):
    drain, kill = measure(lab_tag, "default", [Scenario.DRAIN, Scenario.HAPROXY_KILL])
    _held(drain)
    assert drain.long_lived_broken == 0 == drain.long_lived_predicted_broken, drain
    _held(kill)
    assert kill.long_lived_broken_collateral == 0, kill
    # lb1's own (about a third) were reset with its HAProxy: the prediction counts them.
    assert kill.long_lived_broken == kill.long_lived_predicted_broken, kill


def test_leaf_spine_losing_one_of_eight_nodes_breaks_only_its_own(lab_tag):
    (kill,) = measure(lab_tag, "leaf-spine", [Scenario.HAPROXY_KILL])
    _held(kill)
    assert kill.long_lived_broken_collateral == 0, kill
    assert kill.long_lived_broken == kill.long_lived_predicted_broken, kill


def test_haproxy_kill_with_the_agents_own_tables_breaks_no_other_nodes_connection_each_run(
    lab_tag,
):
    """The peers hear of the withdrawal before its line reaches ExaBGP and replace their table
    in-process within tens of ms, before the router moves lb2's flows to lb3."""
    kills = measure(lab_tag, "default", [Scenario.HAPROXY_KILL] * AGENT_RUNS, None, held=AGENT_HELD)
    for kill in kills:
        _held(kill, AGENT_HELD)
        assert "agent-driven" in kill.note, kill  # the agents' own tables, not the lab's
        assert kill.long_lived_broken_collateral == 0, kill
        assert kill.long_lived_broken == kill.long_lived_predicted_broken, kill


def test_leaf_spine_losing_one_of_eight_with_the_agents_own_tables_breaks_only_its_own(
    lab_tag,
):
    """A drain (lb1 keeps serving: none break) and a HAProxy kill (lb1's own break), with the
    agents' own tables on the two-tier topology."""
    drain, kill = measure(
        lab_tag, "leaf-spine", [Scenario.DRAIN, Scenario.HAPROXY_KILL], None, held=AGENT_HELD
    )
    for m in (drain, kill):
        _held(m, AGENT_HELD)
        assert "agent-driven" in m.note, m
        assert m.long_lived_broken_collateral == 0, m
        assert m.long_lived_broken == m.long_lived_predicted_broken, m
    assert drain.long_lived_broken == 0, drain
