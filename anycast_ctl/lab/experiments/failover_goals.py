"""The goals of the hang and flaky scenarios (pure), beside failover_report.goals' two.

- agent-hang, exabgp-hang: the node out of every FIB within GOAL_HANG_S at p99 (a missed run
  is a miss, as everywhere in the report);
- flaky: no withdrawal, no broken long-lived connection and no failed new connection while
  the node's check answered late on some requests (the service itself was healthy).

Each goal appears only when its scenarios were run, so a report of other scenarios keeps its
two goals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from anycast_ctl.lab.experiments.scenario_names import HANG_SCENARIOS

if TYPE_CHECKING:
    from anycast_ctl.lab.experiments.failover_report import SummaryRow

GOAL_HANG_S = 1.0


@dataclass(frozen=True)
class Goal:
    name: str
    ok: bool | None  # None: not measured in this run
    detail: str


def hang_goal(rows: list[SummaryRow]) -> list[Goal]:
    """One implementation's rows -> [the hang goal] if a hang scenario was run, else []."""
    hung = [r for r in rows if r.scenario in HANG_SCENARIOS and r.withdraw.runs]
    if not hung:
        return []
    p99s = [r.withdraw.p99 for r in hung]
    detail = ", ".join(f"{r.scenario} p99 {r.withdraw.cell(r.withdraw.p99)}" for r in hung)
    runs = sum(r.withdraw.runs for r in hung)
    return [
        Goal(
            f"{' and '.join(r.scenario for r in hung)} p99 <= {GOAL_HANG_S:g} s",
            all(p is not None and p <= GOAL_HANG_S for p in p99s),
            f"{detail} over {runs} runs",
        )
    ]


def quiet_check_goal(rows: list[SummaryRow]) -> list[Goal]:
    """[the flaky goal] if flaky was run, else []."""
    row = next((r for r in rows if r.scenario == "flaky"), None)
    if row is None:
        return []
    withdrawals = row.withdrawals or 0
    broken = row.long_lived_broken or 0
    held = f"{broken}/{row.long_lived}" if row.long_lived is not None else "none held"
    return [
        Goal(
            "flaky check: 0 withdrawals, 0 broken connections",
            withdrawals == 0 and broken == 0 and row.failed == 0,
            f"{withdrawals} withdrawals, long-lived broken {held}, "
            f"failed new {row.failed}/{row.connections} over {row.runs} runs",
        )
    ]
