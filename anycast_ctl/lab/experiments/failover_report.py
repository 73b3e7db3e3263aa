"""Failover measurements -> summary rows, a table for people, JSON, and a PNG plot. Pure,
except `write_plot` (matplotlib, Agg backend, writes a file).

One Measurement is one run of one scenario on one LB node with one implementation (our agent,
or ExaBGP's healthcheck with its default or fastest settings). Times are seconds from the
event (or from the recovery action) until every router's FIB agrees; a time that never came
within its bound is None, and is counted as "missed", never averaged away.

Percentiles use the nearest-rank method over every run, missed runs ranked as infinite: with
20 runs p99 is the worst run, and one miss makes p99 a miss. Small N gives no tighter claim.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields

from anycast_ctl.lab.experiments.failover_goals import Goal, hang_goal, quiet_check_goal
from anycast_ctl.lab.experiments.scenario_names import Scenario

IMPLEMENTATION_ORDER = ("anycast", "exabgp-fast", "exabgp-default")
SCENARIO_ORDER = tuple(s.value for s in Scenario)  # the report's rows: the enum's order
GOAL_WITHDRAW_S = 0.300  # the lab's aim: a HAProxy crash leaves every FIB in < 300 ms p99


@dataclass(frozen=True)
class Measurement:
    implementation: str
    scenario: str
    run: int
    node: str
    withdraw_s: float | None = None  # event -> no router uses the node; None: missed (or n/a)
    withdraw_bound_s: float | None = None  # how long we waited; None: not measured
    recover_s: float | None = None  # recovery action -> every adjacent router uses it again
    recover_bound_s: float | None = None
    connections: int = 0  # steady-load connections started during the run
    failed: int = 0  # of those, the ones that failed
    moved: int | None = None  # probe flows whose LB changed after the withdrawal
    predicted_moved: int | None = None  # the simulator's count for the same flows
    moved_mismatch: int | None = None  # |observed moved set  (sym. diff.)  predicted moved set|
    spurious: int = 0  # other (healthy) nodes that left some FIB during the run
    # Long-lived connections held through the event (None: none were held in this run).
    long_lived: int | None = None  # open at the event
    long_lived_broken: int | None = None  # of those, broken by the event (before recovery)
    long_lived_broken_collateral: int | None = None  # broken ones on another node than `node`
    long_lived_predicted_broken: int | None = None  # the simulator's count (kernel orders)
    per_router: dict[str, float | None] = field(default_factory=dict)  # "router/vip" -> withdraw_s
    note: str = ""
    withdrawals: int | None = None  # flaky: times a node left some FIB (None: not counted)

    @classmethod
    def from_json(cls, data: dict) -> Measurement:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Timing:
    runs: int  # runs where this time was measured
    missed: int
    p50: float | None  # None when that rank is a miss (or nothing measured)
    p99: float | None
    worst: float | None
    bound: float | None  # the largest bound used, to say "> bound" for misses

    def cell(self, value: float | None) -> str:
        if self.runs == 0:
            return "-"
        if value is None:
            return f">{self.bound:g}s" if self.bound is not None else "missed"
        return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


@dataclass(frozen=True)
class SummaryRow:
    scenario: str
    implementation: str
    runs: int
    withdraw: Timing
    recover: Timing
    connections: int
    failed: int
    moved: int | None
    predicted_moved: int | None
    moved_mismatch: int | None
    spurious: int
    long_lived: int | None = None
    long_lived_broken: int | None = None
    long_lived_broken_collateral: int | None = None
    long_lived_predicted_broken: int | None = None
    withdrawals: int | None = None


def nearest_rank(values: list[float], q: float) -> float:
    """The q-th percentile (0 < q <= 100) by nearest rank: a value that was really observed."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def timing(times: list[float | None], bounds: list[float | None]) -> Timing:
    measured = [(t, b) for t, b in zip(times, bounds, strict=True) if b is not None]
    if not measured:
        return Timing(0, 0, None, None, None, None)
    ranked = [t if t is not None else math.inf for t, _ in measured]

    def finite(v: float) -> float | None:
        return None if math.isinf(v) else v

    return Timing(
        runs=len(measured),
        missed=sum(t is None for t, _ in measured),
        p50=finite(nearest_rank(ranked, 50)),
        p99=finite(nearest_rank(ranked, 99)),
        worst=finite(max(ranked)),
        bound=max(b for _, b in measured if b is not None),
    )


def _sum_or_none(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _order(value: str, known: tuple[str, ...]) -> tuple[int, str]:
    return (known.index(value) if value in known else len(known), value)


def summarize(measurements: list[Measurement]) -> list[SummaryRow]:
    """One row per (scenario, implementation), scenarios then implementations in report order."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.scenario, m.implementation), []).append(m)
    rows = []
    for (scenario, impl), group in sorted(
        groups.items(),
        key=lambda kv: (_order(kv[0][0], SCENARIO_ORDER), _order(kv[0][1], IMPLEMENTATION_ORDER)),
    ):
        rows.append(
            SummaryRow(
                scenario=scenario,
                implementation=impl,
                runs=len(group),
                withdraw=timing([m.withdraw_s for m in group], [m.withdraw_bound_s for m in group]),
                recover=timing([m.recover_s for m in group], [m.recover_bound_s for m in group]),
                connections=sum(m.connections for m in group),
                failed=sum(m.failed for m in group),
                moved=_sum_or_none(m.moved for m in group),
                predicted_moved=_sum_or_none(m.predicted_moved for m in group),
                moved_mismatch=_sum_or_none(m.moved_mismatch for m in group),
                spurious=sum(m.spurious for m in group),
                long_lived=_sum_or_none(m.long_lived for m in group),
                long_lived_broken=_sum_or_none(m.long_lived_broken for m in group),
                long_lived_broken_collateral=_sum_or_none(
                    m.long_lived_broken_collateral for m in group
                ),
                long_lived_predicted_broken=_sum_or_none(
                    m.long_lived_predicted_broken for m in group
                ),
                withdrawals=_sum_or_none(m.withdrawals for m in group),
            )
        )
    return rows


HEADERS = (
    "scenario",
    "implementation",
    "runs",
    "withdraw p50",
    "p99",
    "recover p50",
    "p99",
    "failed conns",
    "moved (predicted)",
    "long-lived broken (predicted; collateral)",
    "spurious",
)


def _moved_cell(row: SummaryRow) -> str:
    if row.moved is None:
        return "-"
    verdict = "exact" if row.moved_mismatch == 0 else f"{row.moved_mismatch} differ"
    return f"{row.moved} ({row.predicted_moved}, {verdict})"


def long_lived_cell(row: SummaryRow | Measurement) -> str:
    """'41/200 (41; 14)': broken of those open at the event (predicted; collateral)."""
    if row.long_lived is None:
        return "-"
    return (
        f"{row.long_lived_broken}/{row.long_lived} "
        f"({row.long_lived_predicted_broken}; {row.long_lived_broken_collateral})"
    )


def table_rows(rows: list[SummaryRow]) -> list[tuple[str, ...]]:
    return [
        (
            r.scenario,
            r.implementation,
            str(r.runs),
            r.withdraw.cell(r.withdraw.p50),
            r.withdraw.cell(r.withdraw.p99),
            r.recover.cell(r.recover.p50),
            r.recover.cell(r.recover.p99),
            f"{r.failed}/{r.connections}" if r.connections else "-",
            _moved_cell(r),
            long_lived_cell(r),
            str(r.spurious),
        )
        for r in rows
    ]


def format_table(rows: list[SummaryRow]) -> str:
    body = table_rows(rows)
    widths = [
        max(len(h), *(len(line[i]) for line in body)) if body else len(h)
        for i, h in enumerate(HEADERS)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in body]
    return "\n".join(line.rstrip() for line in lines)


def format_run(m: Measurement) -> str:
    """One run as one line, said as the experiments go."""

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f}ms"

    moved = (
        "" if m.moved is None else f" moved {m.moved}/{m.predicted_moved} (diff {m.moved_mismatch})"
    )
    held = "" if m.long_lived is None else f" long-lived broken {long_lived_cell(m)}"
    return (
        f"{m.implementation:<14} {m.scenario:<12} #{m.run}: withdraw {ms(m.withdraw_s)} "
        f"recover {ms(m.recover_s)} failed {m.failed}/{m.connections}{moved}{held} "
        f"spurious {m.spurious}" + (f"  [{m.note}]" if m.note else "")
    )


def goals(rows: list[SummaryRow], implementation: str = "anycast") -> list[Goal]:
    """The lab's aims, for one implementation: HAProxy crash out of every FIB in < 300 ms p99;
    no withdrawal a healthy service did not deserve (in any scenario, and with no event); and
    where they were run, a hung agent or ExaBGP out of every FIB in <= 1 s p99, and a flaky
    check costing no withdrawal and no connection (failover_goals.py)."""
    mine = [r for r in rows if r.implementation == implementation]
    crash = next((r for r in mine if r.scenario == "haproxy-kill"), None)
    if crash is None or crash.withdraw.runs == 0:
        speed = Goal("haproxy-kill p99 < 300 ms", None, "not measured")
    else:
        p99 = crash.withdraw.p99
        speed = Goal(
            "haproxy-kill p99 < 300 ms",
            p99 is not None and p99 < GOAL_WITHDRAW_S,
            f"p99 {crash.withdraw.cell(p99)} over {crash.withdraw.runs} runs",
        )
    if not mine:
        quiet = Goal("no spurious withdrawal", None, "not measured")
    else:
        spurious = sum(r.spurious for r in mine)
        steady = [r for r in mine if r.scenario == "steady"]
        where = "incl. a no-event steady period" if steady else "no steady period measured"
        quiet = Goal(
            "no spurious withdrawal",
            spurious == 0,
            f"{spurious} over {sum(r.runs for r in mine)} runs ({where})",
        )
    return [speed, quiet] + hang_goal(mine) + quiet_check_goal(mine)


def format_goals(goal_list: list[Goal], implementation: str = "anycast") -> str:
    mark = {True: "PASS", False: "FAIL", None: "n/a "}
    return "\n".join(f"[{mark[g.ok]}] {implementation}: {g.name}: {g.detail}" for g in goal_list)


def to_json(measurements: list[Measurement], meta: dict | None = None) -> dict:
    rows = summarize(measurements)
    return {
        "meta": meta or {},
        "summary": [asdict(r) for r in rows],
        "goals": {
            impl: [asdict(g) for g in goals(rows, impl)]
            for impl in sorted({r.implementation for r in rows})
        },
        "measurements": [asdict(m) for m in measurements],
    }


def from_json(data: dict) -> list[Measurement]:
    return [Measurement.from_json(m) for m in data.get("measurements", [])]


# ---------------------------------------------------------------- plot (I/O)
COLORS = {"anycast": "#1b9e77", "exabgp-fast": "#d95f02", "exabgp-default": "#7570b3"}


def write_plot(
    measurements: list[Measurement], path: str, title: str = "anycast-ctl lab failover"
) -> None:
    """PNG: withdraw and recovery times (bar = p50, whisker = p99, hatched = missed at the
    bound) and failed connections per run, per scenario and implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarize(measurements)
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    impls = sorted({r.implementation for r in rows}, key=lambda i: _order(i, IMPLEMENTATION_ORDER))
    by_key = {(r.scenario, r.implementation): r for r in rows}
    fig, axes = plt.subplots(1, 3, figsize=(16, 1.2 + 0.75 * max(1, len(scenarios))), sharey=True)
    height = 0.8 / max(1, len(impls))
    for panel, (ax, label) in enumerate(
        zip(
            axes,
            (
                "withdraw: event -> out of every FIB (s)",
                "recover: action -> back in every FIB (s)",
                "failed new connections per run; probe flows moved (predicted);\n"
                "long-lived broken/open (predicted; collateral)",
            ),
            strict=True,
        )
    ):
        for k, impl in enumerate(impls):
            for y, scenario in enumerate(scenarios):
                row = by_key.get((scenario, impl))
                if row is None:
                    continue
                pos = y + (k - (len(impls) - 1) / 2) * height
                if panel == 2:
                    per_run = row.failed / max(1, row.runs)
                    ax.barh(pos, per_run, height, color=COLORS.get(impl, "grey"))
                    label = "" if row.moved is None else f" moved {_moved_cell(row)}"
                    if row.long_lived is not None:
                        label += f"  long-lived {long_lived_cell(row)}"
                    if label:
                        ax.text(per_run, pos, label, va="center", fontsize=7)
                    continue
                t = row.withdraw if panel == 0 else row.recover
                _timing_bar(ax, pos, height, t, COLORS.get(impl, "grey"))
        ax.set_title(label, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if panel < 2:
            _seconds_axis(ax)
        if panel == 0:
            ax.axvline(GOAL_WITHDRAW_S, color="red", lw=0.8, ls="--")
    axes[0].set_yticks(range(len(scenarios)), scenarios)
    axes[0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS.get(i, "grey")) for i in impls]
    fig.legend(handles, impls, loc="upper right", ncol=len(impls), fontsize=9)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _timing_bar(ax, pos: float, height: float, t: Timing, color: str) -> None:
    if t.runs == 0:
        return
    if t.p50 is None:  # at least half the runs missed: show the bound, hatched
        ax.barh(pos, t.bound, height, color="none", edgecolor=color, hatch="//")
        ax.text(t.bound, pos, f" >{t.bound:g}s", va="center", fontsize=7)
        return
    floor = 0.001  # a log axis cannot show 0 (a state that already held at the event)
    p50 = max(t.p50, floor)
    top = max(t.p99 if t.p99 is not None else (t.bound or p50), floor)
    ax.barh(pos, p50, height, color=color)
    ax.plot([p50, top], [pos, pos], color="black", lw=1)
    ax.text(top, pos, f" {t.cell(t.p99)}", va="center", fontsize=7)


def _seconds_axis(ax) -> None:
    """Log scale in seconds, labelled 0.05 0.1 0.2 0.5 1 2 5 ..., room on the right for labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    ax.set_xlim(min(low, 0.05), high * 1.8)
    ticks = [m * 10**e for e in range(-3, 3) for m in (1, 2, 5)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
