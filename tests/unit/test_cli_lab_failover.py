"""`anycast-ctl lab failover` argument handling (no root, no lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.cli import main
from anycast_ctl.cli.lab_failover_cmd import ALL_SCENARIOS, parse_scenarios, pick_node
from anycast_ctl.config.topology import load_topology
from anycast_ctl.errors import UserError

DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"


def test_the_cli_knows_exactly_the_scenarios_the_lab_runs():
    from anycast_ctl.lab.experiments.scenario_names import Scenario

    assert [s.value for s in Scenario] == ALL_SCENARIOS


def test_scenarios_default_to_all_and_keep_the_order_given():
    assert parse_scenarios(()) == ALL_SCENARIOS
    assert parse_scenarios(("drain,steady", "drain", " link-down ")) == [
        "drain",
        "steady",
        "link-down",
    ]


def test_unknown_scenarios_are_named():
    with pytest.raises(UserError, match="unknown: nope, worse"):
        parse_scenarios(("nope,drain", "worse"))


def test_node_defaults_to_the_first_lb_and_must_be_an_lb():
    topo = load_topology(DEFAULT)
    assert pick_node(topo, None) == "lb1"
    assert pick_node(topo, "lb3") == "lb3"
    with pytest.raises(UserError, match="'r1' is not an LB node"):
        pick_node(topo, "r1")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


def test_bad_scenario_exits_2_before_needing_root(capsys):
    code, err = run(["lab", "failover", "--scenarios", "haproxy-explode"], capsys)
    assert code == 2 and "error: <argument>: --scenarios: unknown: haproxy-explode" in err


def test_name_and_topology_together_exit_2(capsys):
    code, err = run(["lab", "failover", "mylab", "--topology", str(DEFAULT)], capsys)
    assert code == 2 and "either a running lab's NAME or --topology" in err
