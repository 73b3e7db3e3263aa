"""The hang and flaky goals (lab/experiments/failover_goals.py) through failover_report.goals,
and the flaky scenario's nft rules (lab/experiments/flaky.py, pure part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.lab.experiments.failover_report import Measurement, goals, summarize
from anycast_ctl.lab.experiments.flaky import late_ruleset

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def hang(impl: str, scenario: str, times: list[float | None]) -> list[Measurement]:
    return [
        Measurement(impl, scenario, i, "lb1", withdraw_s=t, withdraw_bound_s=3.0)
        for i, t in enumerate(times)
    ]


def flaky(withdrawals: int, broken: int, failed: int = 0) -> Measurement:
    return Measurement(
        "anycast",
        "flaky",
        0,
        "lb1",
        connections=300,
        failed=failed,
        long_lived=50,
        long_lived_broken=broken,
        withdrawals=withdrawals,
    )


def by_name(ms: list[Measurement], impl: str = "anycast") -> dict[str, bool | None]:
    return {g.name: g.ok for g in goals(summarize(ms), impl)}


@pytest.mark.parametrize(
    ("agent", "exabgp", "ok"),
    [
        ([0.5, 0.9], [0.6], True),
        ([0.5, 1.2], [0.6], False),  # one slow run is the p99 of two
        ([0.5], [None], False),  # a miss at the bound
    ],
)
def test_the_hang_goal_is_p99_within_one_second_for_both(agent, exabgp, ok):
    ms = hang("anycast", "agent-hang", agent) + hang("anycast", "exabgp-hang", exabgp)
    assert by_name(ms)["agent-hang and exabgp-hang p99 <= 1 s"] is ok


def test_goals_of_scenarios_not_run_are_left_out():
    names = by_name(hang("anycast", "haproxy-kill", [0.1]))
    assert len(names) == 2 and not any("hang" in n or "flaky" in n for n in names)


@pytest.mark.parametrize(
    ("runs", "ok"),
    [
        ([flaky(0, 0), flaky(0, 0)], True),
        ([flaky(0, 0), flaky(1, 0)], False),
        ([flaky(0, 3)], False),
        ([flaky(0, 0, failed=1)], False),
    ],
)
def test_the_flaky_goal_wants_no_withdrawal_and_nothing_broken(runs, ok):
    goal = next(g for g in goals(summarize(runs)) if "flaky" in g.name)
    assert goal.ok is ok
    assert f"{sum(m.withdrawals or 0 for m in runs)} withdrawals" in goal.detail


def test_late_rules_drop_a_share_of_local_syns_to_each_vip_only():
    topo = load_topology(TOPOLOGIES / "default.yaml")
    text = late_ruleset(topo, "lb1", 5)
    rule = next(line for line in text.splitlines() if "drop" in line)
    assert 'iifname "lo" ip daddr 192.0.2.10 tcp dport 443' in rule
    assert "== syn numgen random mod 100 < 5" in rule
    with pytest.raises(ValueError, match="percent"):
        late_ruleset(topo, "lb1", 0)
