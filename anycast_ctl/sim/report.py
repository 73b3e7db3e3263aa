"""Simulator results for people (tables), scripts (JSON) and spreadsheets (CSV)."""

from __future__ import annotations

import csv
import io

from anycast_ctl.sim.results import SimResult


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(header), *(line(r) for r in rows)]


def run_table(r: SimResult) -> str:
    algos = sorted(set(r.algorithms.values()))
    out = [f"topology {r.topology}: {r.flows} flows; routers use {', '.join(algos)}"]
    if r.unroutable:
        out.append(f"unroutable before any event: {_pct(r.unroutable)} of flows")
    out.append("")
    out += _table(
        ["LB", "flows", "flows %", "bytes %"],
        [[s.name, str(s.flows), _pct(s.flow_share), _pct(s.byte_share)] for s in r.lbs],
    )
    out.append("")
    for v in r.vips:
        out.append(
            f"VIP {v.name}: {v.flows} flows over {len(v.lbs)} LBs, imbalance (max/mean)"
            f" {v.imbalance:.3f} by flows, {v.byte_imbalance:.3f} by bytes"
        )
    out += ["", *polarization_lines(r)]
    if r.events:
        out += ["", "events (fraction of all flows that change LB):"]
        rows = [
            [
                e.event,
                _pct(e.moved),
                _pct(e.own),
                _pct(e.collateral),
                _pct(e.lost),
                f"{e.imbalance_after:.3f}",
            ]
            for e in r.events
        ]
        out += _table(["event", "moved", "own", "collateral", "lost", "imbalance after"], rows)
        out.append(
            "own: flows of the removed LB/router/link (or taken by the added LB);"
            " collateral: moved between untouched LBs"
        )
    return "\n".join(out)


def polarization_lines(r: SimResult) -> list[str]:
    bad = r.polarized
    if not bad:
        return ["polarization: none (every router spreads its flows over all its next hops)"]
    out = [
        "POLARIZATION: routers whose flows were already sorted by an upstream router with the"
        " same hash:"
    ]
    for p in bad:
        unused = f"unused next hops {', '.join(p.unused)}" if p.unused else "no unused next hop"
        out.append(
            f"  {p.router} ({p.vip}): {unused}; busiest next hop {p.imbalance:.2f}x its fair share"
        )
    out.append("  fix: give the tiers different seeds (or algorithms)")
    return out


def compare_table(results: dict[str, SimResult]) -> str:
    first = next(iter(results.values()))
    header = ["algorithm", "imbalance", "polarized"] + [e.event for e in first.events]
    rows = []
    for algo, r in results.items():
        cells = [algo, f"{r.imbalance:.3f}", "yes" if r.polarized else "no"]
        cells += [f"{_pct(e.moved).strip()} ({_pct(e.collateral).strip()})" for e in r.events]
        rows.append(cells)
    out = [
        f"topology {first.topology}: {first.flows} flows, every router on the same algorithm",
        "",
    ]
    out += _table(header, rows)
    out += [
        "",
        "imbalance: max/mean flows per LB (worst VIP); events: flows that change LB"
        " (collateral in brackets)",
    ]
    return "\n".join(out)


def to_json(results: dict[str, SimResult] | SimResult) -> dict[str, object]:
    if isinstance(results, SimResult):
        return results.to_dict()
    first = next(iter(results.values()))
    return {
        "topology": first.topology,
        "flows": first.flows,
        "algorithms": {a: r.to_dict() for a, r in results.items()},
    }


def to_csv(results: dict[str, SimResult]) -> str:
    """Tidy rows (algorithm, section, item, metric, value): pivot them in any spreadsheet."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["algorithm", "section", "item", "metric", "value"])
    for algo, r in results.items():
        for s in r.lbs:
            for metric in ("flows", "flow_share", "bytes", "byte_share"):
                w.writerow([algo, "lb", s.name, metric, _num(getattr(s, metric))])
        for v in r.vips:
            w.writerow([algo, "vip", v.name, "imbalance", _num(v.imbalance)])
            w.writerow([algo, "vip", v.name, "byte_imbalance", _num(v.byte_imbalance)])
        for h in r.nexthops:
            w.writerow([algo, "nexthop", f"{h.router}>{h.nexthop}@{h.vip}", "share", _num(h.share)])
        for e in r.events:
            for metric in (
                "moved",
                "own",
                "collateral",
                "lost",
                "moved_bytes",
                "collateral_bytes",
                "imbalance_after",
            ):
                w.writerow([algo, "event", e.event, metric, _num(getattr(e, metric))])
    return buf.getvalue()


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6f}"
