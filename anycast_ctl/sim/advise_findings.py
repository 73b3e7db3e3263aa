"""The findings of `sim advise`, one builder per kind, from the measured runs (`advise.py`)."""

from __future__ import annotations

from anycast_ctl.sim.advise_fixes import differing_fields, reachable, show, signature
from anycast_ctl.sim.advise_model import (
    INFO,
    MEASURABLE,
    WARNING,
    Finding,
    Fix,
    Measure,
    Runs,
    pct,
)
from anycast_ctl.sim.results import SimResult


def _failure_measures(runs: Runs, routers: list[str], fix_variant: str) -> list[Measure]:
    out = []
    for r in routers:
        label = f"router {r} fails"
        now = runs.event("now", label)
        fixed = runs.event(fix_variant, label)
        every = runs.event("all", label)
        if now is None:
            continue
        out.append(
            Measure(
                f"{label}: flows that change LB",
                "flows",
                now.moved,
                fixed.moved if fixed else None,
                every.moved if every and fixed and every.moved != fixed.moved else None,
            )
        )
        if now.lost:
            out.append(Measure(f"{label}: flows left without a path", "flows", now.lost))
    return out


def _moves(measures: list[Measure]) -> list[Measure]:
    return [m for m in measures if m.unit == "flows" and m.what.endswith("change LB")]


def _at_stake(measures: list[Measure]) -> tuple[float, float | None]:
    """The worst event's moved share, now and with this finding's fix."""
    moved = _moves(measures)
    if not moved:
        return 0.0, None
    fixed = [m.with_fix for m in moved if m.with_fix is not None]
    return max(m.now for m in moved), (max(fixed) if fixed else None)


def _with_all(measures: list[Measure]) -> float | None:
    every = [m.with_all_fixes for m in _moves(measures) if m.with_all_fixes is not None]
    return max(every) if every else None


def _severity(now: float, *fixed: float | None) -> str:
    """A warning when a proposed fix saves a measurable share of the flows."""
    best = min((f for f in fixed if f is not None), default=None)
    return WARNING if best is not None and now - best >= MEASURABLE else INFO


def _hashing_text(changes: dict[str, dict[str, object]]) -> str:
    parts = []
    for router, diff in changes.items():
        values = ", ".join(f"{f} {show(f, v)}" for f, v in diff.items())
        parts.append(f"{router}: {values}")
    return "; ".join(parts)


def tier_hashing_findings(runs: Runs) -> list[Finding]:
    topo, out = runs.topo, []
    for tier in topo.tiers:
        routers = topo.routers_in(tier)
        if len({signature(topo.hashing_for(r)) for r in routers}) < 2:
            continue
        differs = differing_fields(topo, routers)
        described = "; ".join(
            f"{f} " + ", ".join(f"{r} {v}" for r, v in values.items())
            for f, values in differs.items()
        )
        measures = _failure_measures(runs, routers, "hashing")
        now, fixed = _at_stake(measures)
        changes = {
            r: {f: v for f, v in c.items() if f in differs}
            for r, c in runs.hashing.for_routers(routers).items()
        }
        changes = {r: c for r, c in changes.items() if c}
        summary = (
            f"the {tier} routers hash differently ({described}): when one fails or goes for "
            f"maintenance, the others re-hash its flows onto other LB nodes; "
            f"{pct(now)} of all flows change LB"
        )
        every = _with_all(measures)
        if fixed is not None:
            summary += f" ({pct(fixed)} with one hashing for the tier"
            summary += (
                f", {pct(every)} with its next hops in one order too)" if every is not None else ")"
            )
        if now < MEASURABLE and any(m.what.endswith("without a path") for m in measures):
            summary += (
                "; here each client reaches only one of them, so a failure loses its clients' "
                "flows instead of moving them (it matters once an upstream router spreads "
                "over them)"
            )
        fix = Fix(
            f"give the {tier} routers one hashing: {_hashing_text(changes)}"
            + (f" (and {_apart_text(runs, tier)})" if tier in runs.hashing.fresh_seed else ""),
            hashing=runs.hashing.for_routers(routers),
        )
        out.append(
            Finding(
                "tier-seeds-differ",
                _severity(now, fixed, every),
                tier,
                routers,
                [],
                summary,
                now,
                fixed,
                measures,
                fix,
            )
        )
    return out


def _apart_text(runs: Runs, tier: str) -> str:
    seed = runs.hashing.fresh_seed[tier]
    earlier = runs.hashing.apart_from[tier]
    return f"seed {show('seed', seed)}, which keeps it apart from tier {earlier}"


def nexthop_order_findings(runs: Runs) -> list[Finding]:
    topo, out = runs.topo, []
    for tier in topo.tiers:
        routers = topo.routers_in(tier)
        reordered = {r: o for r, o in runs.order.items() if r in routers}
        if not reordered:
            continue
        measures = _failure_measures(runs, routers, "order")
        now, fixed = _at_stake(measures)
        orders = "; ".join(f"{r}: {', '.join(topo.downstream(r))}" for r in routers)
        summary = (
            f"the {tier} routers order the same next hops differently ({orders}): hash-threshold "
            f"picks by position, so when one fails the others send its flows elsewhere; "
            f"{pct(now)} of all flows change LB"
        )
        every = _with_all(measures)
        if fixed is not None:
            summary += f" ({pct(fixed)} in one order"
            summary += (
                f", {pct(every)} with one hashing for the tier too)" if every is not None else ")"
            )
        text = "; ".join(
            f"list {r}'s links in the order {', '.join(o)}" for r, o in reordered.items()
        )
        fix = Fix(
            text + " (links are numbered in file order, and a router's kernel lists its next "
            "hops in that order: `anycast-ctl lab status` shows it)",
            nexthop_order=reordered,
        )
        out.append(
            Finding(
                "nexthop-order",
                _severity(now, fixed, every),
                tier,
                routers,
                [],
                summary,
                now,
                fixed,
                measures,
                fix,
            )
        )
    return out


def polarization_findings(runs: Runs) -> list[Finding]:
    """Pairs of tiers that hash alike where the later tier is downstream of the earlier one."""
    topo, now, out = runs.topo, runs.results["now"], []
    fixed = runs.results.get("hashing")
    for j, later in enumerate(topo.tiers):
        for earlier in topo.tiers[:j]:
            pairs = [
                (u, r)
                for u in topo.routers_in(earlier)
                for r in reachable(topo, u)
                if topo.router(r).tier == later
                and signature(topo.hashing_for(u)) == signature(topo.hashing_for(r))
                and len(topo.downstream(r)) > 1
            ]
            if pairs:
                out.append(_polarization(runs, earlier, later, pairs, now, fixed))
    return out


def _polarization(
    runs: Runs,
    earlier: str,
    later: str,
    pairs: list[tuple[str, str]],
    now: SimResult,
    fixed: SimResult | None,
) -> Finding:
    downstream = sorted({r for _, r in pairs}, key=runs.topo.routers_in(later).index)
    upstream = sorted({u for u, _ in pairs}, key=runs.topo.routers_in(earlier).index)
    measures, unused = [], []
    for r in downstream:
        here = [p for p in now.polarization if p.router == r]
        after = [p for p in fixed.polarization if p.router == r] if fixed else []
        worst = max((p.imbalance for p in here), default=1.0)
        worst_after = max((p.imbalance for p in after), default=1.0) if fixed else None
        measures.append(Measure(f"{r}: busiest next hop / fair share", "ratio", worst, worst_after))
        unused += [f"{r}>{n}" for p in here for n in p.unused]
    polarized = {p.router for p in now.polarized if p.router in downstream}
    polarized_after = {p.router for p in fixed.polarized} & set(downstream) if fixed else set()
    share = _flow_share(now, polarized)
    share_after = _flow_share(fixed, polarized_after) if fixed else None
    summary = (
        f"tier {later} hashes like tier {earlier} (routers {', '.join(upstream + downstream)}): "
        f"each {later} router sees only the slice of the hash space its {earlier} router sent it"
    )
    summary += (
        f" and leaves next hops unused ({', '.join(unused)})"
        if unused
        else (" and spreads unevenly" if polarized else "; measured here, the spread stays even")
    )
    seed = runs.hashing.fresh_seed.get(later)
    text = (
        f"give tier {later} its own seed: {show('seed', seed)}"
        if seed is not None
        else f"give tier {later} a seed other than tier {earlier}'s"
    )
    return Finding(
        "polarization",
        WARNING if polarized else INFO,
        later,
        upstream + downstream,
        [],
        summary,
        share,
        share_after,
        measures,
        Fix(text, hashing=runs.hashing.for_routers(runs.topo.routers_in(later))),
    )


def _flow_share(result: SimResult, routers: set[str]) -> float:
    """Fraction of all flows that cross one of `routers`."""
    crossing = sum(h.flows for h in result.nexthops if h.router in routers)
    return crossing / max(result.flows, 1)
