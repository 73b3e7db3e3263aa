"""lab/experiments/failover_report.py on synthetic measurements: percentiles, misses, table,
goals, JSON, plot."""

from __future__ import annotations

import json

import pytest

from anycast_ctl.lab.experiments.failover_report import (
    Measurement,
    format_goals,
    format_table,
    from_json,
    goals,
    nearest_rank,
    summarize,
    timing,
    to_json,
    write_plot,
)


def runs(
    impl: str, scenario: str, withdraw: list[float | None], bound: float = 2.0, **extra
) -> list[Measurement]:
    return [
        Measurement(impl, scenario, i, "lb1", withdraw_s=w, withdraw_bound_s=bound, **extra)
        for i, w in enumerate(withdraw)
    ]


def test_nearest_rank_is_an_observed_value():
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank(values, 50) == 50.0
    assert nearest_rank(values, 99) == 99.0
    assert nearest_rank(values[:20], 99) == 20.0  # with 20 runs p99 is the worst one
    with pytest.raises(ValueError):
        nearest_rank([], 50)


def test_a_missed_run_makes_p99_a_miss_and_is_counted():
    t = timing([0.1, 0.2, None], [2.0, 2.0, 2.0])
    assert (t.runs, t.missed, t.p50, t.p99, t.worst) == (3, 1, 0.2, None, None)
    assert t.cell(t.p99) == ">2s"
    assert t.cell(t.p50) == "200ms"
    assert t.cell(6.1234) == "6.12s"


def test_unmeasured_times_are_not_runs():
    t = timing([None, None], [None, None])
    assert t.runs == 0 and t.cell(t.p50) == "-"


def test_summary_groups_by_scenario_then_implementation_in_report_order():
    ms = (
        runs("exabgp-default", "haproxy-kill", [6.1, 5.2], bound=10)
        + runs("anycast", "haproxy-kill", [0.15, 0.2, 0.25])
        + runs("anycast", "steady", [None], bound=None)
        + runs("exabgp-fast", "haproxy-kill", [0.3])
    )
    rows = summarize(ms)
    assert [(r.scenario, r.implementation, r.runs) for r in rows] == [
        ("steady", "anycast", 1),
        ("haproxy-kill", "anycast", 3),
        ("haproxy-kill", "exabgp-fast", 1),
        ("haproxy-kill", "exabgp-default", 2),
    ]
    assert rows[1].withdraw.p50 == 0.2 and rows[1].withdraw.p99 == 0.25
    assert rows[3].withdraw.p99 == 6.1


def test_counts_are_summed_and_moved_flows_compared():
    ms = runs(
        "anycast",
        "drain",
        [0.1, 0.1],
        connections=100,
        failed=1,
        moved=30,
        predicted_moved=30,
        moved_mismatch=0,
    )
    ms += runs(
        "anycast",
        "link-down",
        [0.1],
        connections=50,
        failed=7,
        moved=20,
        predicted_moved=22,
        moved_mismatch=2,
    )
    rows = {r.scenario: r for r in summarize(ms)}
    assert (rows["drain"].connections, rows["drain"].failed, rows["drain"].moved) == (200, 2, 60)
    table = format_table(list(rows.values()))
    assert "2/200" in table and "60 (60, exact)" in table
    assert "20 (22, 2 differ)" in table and "7/50" in table


def test_table_shows_misses_with_their_bound():
    table = format_table(summarize(runs("exabgp-fast", "haproxy-hang", [None, None], bound=5)))
    line = next(line for line in table.splitlines() if "haproxy-hang" in line)
    assert line.count(">5s") == 2  # p50 and p99 both missed


@pytest.mark.parametrize(
    ("times", "spurious", "expect"),
    [
        ([0.12, 0.18, 0.29], 0, (True, True)),
        ([0.12, 0.18, 0.31], 0, (False, True)),
        ([0.12, None], 0, (False, True)),
        ([0.12], 1, (True, False)),
    ],
)
def test_goals(times, spurious, expect):
    ms = runs("anycast", "haproxy-kill", times, spurious=spurious) + runs(
        "anycast", "steady", [None], bound=None
    )
    result = goals(summarize(ms))
    assert tuple(g.ok for g in result) == expect
    assert ("FAIL" in format_goals(result)) == (False in expect)


def test_goals_not_measured():
    result = goals(summarize(runs("exabgp-fast", "drain", [0.5])))
    assert [g.ok for g in result] == [None, None]


def test_json_round_trip(tmp_path):
    ms = runs("anycast", "haproxy-kill", [0.1, None], per_router={"r1/web": 0.1}, note="x")
    data = json.loads(json.dumps(to_json(ms, {"topology": "default"})))
    assert from_json(data) == ms
    assert data["meta"] == {"topology": "default"}
    assert data["summary"][0]["withdraw"]["missed"] == 1
    assert data["goals"]["anycast"][0]["ok"] is False


def test_plot_writes_a_png(tmp_path):
    ms = (
        runs("anycast", "haproxy-kill", [0.15, 0.2], failed=2, connections=40)
        + runs("exabgp-default", "haproxy-kill", [None], bound=10)
        + [Measurement("anycast", "drain", 0, "lb1", 0.0, 2.0, 0.4, 5.0)]
    )
    out = tmp_path / "failover.png"
    write_plot(ms, str(out))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
