"""`sim advise` for people (a table, then each finding) and for scripts (`{"findings": [...]}`)."""

from __future__ import annotations

from anycast_ctl.sim.advise_model import WARNING, Finding, Measure


def to_json(findings: list[Finding]) -> dict[str, object]:
    return {"findings": [f.to_dict() for f in findings]}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _figure(m: Measure, x: float | None) -> str:
    if x is None:
        return "-"
    return _pct(x) if m.unit == "flows" else f"{x:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned text columns, right-aligned figures (cells that end in % or x, or '-')."""
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
    numeric = [
        all(c == "-" or c[-1:] in ("%", "x") for c in col[1:]) and len(col) > 1
        for col in zip(header, *rows, strict=True)
    ]
    return [
        "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)
        ).rstrip()
        for cells in (header, *rows)
    ]


def _where(f: Finding) -> str:
    if f.lbs:
        return ", ".join(f.lbs)
    return f"{f.tier} {', '.join(f.routers)}" if f.tier else ", ".join(f.routers)


def _with_all(f: Finding) -> float | None:
    every = [m.with_all_fixes for m in f.measures if m.unit == "flows"]
    known = [x for x in every if x is not None]
    return max(known) if known else None


def advise_table(topology: str, flows: int, findings: list[Finding]) -> str:
    """The hashing findings (numbered as in the JSON), then one table of LB withdrawals."""
    planning = ("lb-withdrawal", "router-withdrawal")
    hashing = [(i, f) for i, f in enumerate(findings, 1) if f.kind not in planning]
    withdrawals = [f for f in findings if f.kind == "lb-withdrawal"]
    routers = [f for f in findings if f.kind == "router-withdrawal"]
    warnings = sum(f.severity == WARNING for f in findings)
    out = [
        f"topology {topology}: {flows} flows; {warnings} of {len(hashing)} hashing findings "
        f"to fix; {len(withdrawals) + len(routers)} withdrawals to plan for",
        "at stake: share of all flows that change LB node (each one a broken connection; for "
        "polarization, the flows crossing the polarized routers)",
    ]
    if not hashing:
        out += ["", "hashing: nothing to fix (routers of a tier hash alike, tiers hash apart)"]
    else:
        every = any(_with_all(f) is not None for _, f in hashing)
        rows = [
            [
                str(i),
                f.kind,
                f.severity,
                _where(f),
                _pct(f.flows_at_stake),
                _pct(f.flows_at_stake_with_fix),
            ]
            + ([_pct(_with_all(f))] if every else [])
            for i, f in hashing
        ]
        header = ["#", "kind", "severity", "where", "at stake", "with fix"]
        out += ["", *_table(header + (["with every fix"] if every else []), rows)]
    for i, f in hashing:
        out += ["", f"{i}. {f.kind} ({f.severity}): {f.summary}"]
        every = any(m.with_all_fixes is not None for m in f.measures)
        header = ["", "now", "with fix"] + (["with every fix"] if every else [])
        rows = [
            [m.what, _figure(m, m.now), _figure(m, m.with_fix)]
            + ([_figure(m, m.with_all_fixes)] if every else [])
            for m in f.measures
        ]
        out += ["   " + line for line in _table(header, rows)]
        out.append(f"   fix: {f.fix.text}")
    if withdrawals:
        out += ["", *_withdrawal_table(withdrawals)]
    if routers:
        out += ["", *_router_table(routers)]
    return "\n".join(out)


def _withdrawal_table(findings: list[Finding]) -> list[str]:
    rows = []
    for f in findings:
        m = {x.what.split(": ", 1)[1]: x for x in f.measures}
        moved, own, collateral = (
            m["flows that change LB"],
            m["its own flows"],
            m["flows moved between other LBs (collateral)"],
        )
        lost = m.get("flows left without a path")
        rows.append(
            [
                ", ".join(f.lbs),
                _pct(moved.now),
                _pct(own.now),
                _pct(collateral.now),
                _pct(lost.now if lost else 0.0),
                f"{m['busiest LB / mean after'].now:.3f}x",
                _pct(moved.with_fix),
            ]
        )
    header = ["LB", "moved", "own", "collateral", "lost", "busiest/mean after", "resilient"]
    out = ["LB withdrawals (failure, drain or maintenance of one LB node):"]
    out += ["   " + line for line in _table(header, rows)]
    worst = max(findings, key=lambda f: f.flows_at_stake)
    out.append(f"   {worst.lbs[0]}: {worst.fix.text}")
    return out


def _router_table(findings: list[Finding]) -> list[str]:
    rows = []
    for f in findings:
        m = {x.what.split(": ", 1)[1]: x for x in f.measures}
        moved, lost = m["flows that change LB"], m.get("flows left without a path")
        rows.append(
            [
                f"{f.routers[0]} ({f.tier})",
                _pct(moved.now),
                _pct(lost.now if lost else 0.0),
                _pct(moved.with_fix),
                f.fix.text,
            ]
        )
    header = ["router", "moved", "lost", "advised", ""]
    out = ["Router withdrawals (failure or maintenance of one router):"]
    return out + ["   " + line for line in _table(header, rows)]
