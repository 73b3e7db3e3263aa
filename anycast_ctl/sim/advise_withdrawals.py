"""`sim advise` findings for planning: what each single LB or router withdrawal moves.

A withdrawal (a failure, a drain, a maintenance window) breaks every connection whose flow
changes LB node: the withdrawn node's own flows, and with hash-threshold ECMP a collateral share
moved between nodes the event does not touch.
"""

from __future__ import annotations

from anycast_ctl.config.topology import Algorithm, Topology
from anycast_ctl.sim.advise_model import INFO, MEASURABLE, Finding, Fix, Measure, Runs, pct


def lb_facing(topo: Topology) -> list[str]:
    return topo.routers_in(topo.tiers[-1])


def lb_withdrawal_findings(runs: Runs) -> list[Finding]:
    topo, out = runs.topo, []
    for lb in topo.lbs:
        label = f"withdraw {lb.name}"
        now = runs.event("now", label)
        if now is None:
            continue
        alt = (
            next((e for e in runs.resilient.events if e.event == label), None)
            if runs.resilient
            else None
        )
        measures = [
            Measure(
                f"{label}: flows that change LB", "flows", now.moved, alt.moved if alt else None
            ),
            Measure(f"{label}: its own flows", "flows", now.own, alt.own if alt else None),
            Measure(
                f"{label}: flows moved between other LBs (collateral)",
                "flows",
                now.collateral,
                alt.collateral if alt else None,
            ),
            Measure(f"{label}: busiest LB / mean after", "ratio", now.imbalance_after),
        ]
        if now.lost:
            measures.append(Measure(f"{label}: flows left without a path", "flows", now.lost))
        routers = [r for r in lb_facing(topo) if lb.name in topo.downstream(r)]
        summary = (
            f"withdrawing {lb.name} (failure, drain or maintenance) moves {pct(now.moved)} of all "
            f"flows: its own {pct(now.own)} and {pct(now.collateral)} between LB nodes it does "
            f"not touch"
        )
        if alt is None or now.collateral < MEASURABLE:
            text = "nothing to fix: only its own flows move"
        else:
            text = (
                f"its own {pct(now.own)} break whatever the hashing; the collateral comes from "
                f"{_selection(topo, routers)}, and resilient next-hop groups would move "
                f"{pct(alt.moved)} in all{_frr_caveat(topo, routers)}: plan the maintenance "
                f"window for {pct(now.moved)} broken connections"
            )
        out.append(
            Finding(
                "lb-withdrawal",
                INFO,
                None,
                routers,
                [lb.name],
                summary,
                now.moved,
                alt.moved if alt else None,
                measures,
                Fix(text),
            )
        )
    return out


THRESHOLD = {Algorithm.LINUX, Algorithm.HASH_THRESHOLD}


def _selection(topo: Topology, routers: list[str]) -> str:
    algorithms = {Algorithm(topo.hashing_for(r).algorithm) for r in routers}
    if algorithms <= THRESHOLD:
        return "hash-threshold ECMP (regions of the hash space shift when one goes)"
    return "the routers' " + "/".join(sorted(a.value for a in algorithms)) + " selection"


def _frr_caveat(topo: Topology, routers: list[str]) -> str:
    if {Algorithm(topo.hashing_for(r).algorithm) for r in routers} <= THRESHOLD:
        return ", but FRR 8.4 installs BGP routes only as hash-threshold groups"
    return ""


def router_withdrawal_findings(runs: Runs) -> list[Finding]:
    """Every router of a tier with more than one: its failure or maintenance, now and advised."""
    topo, out = runs.topo, []
    advised = runs.advised_variant
    for tier in topo.tiers:
        routers = topo.routers_in(tier)
        if len(routers) < 2:
            continue
        for r in routers:
            label = f"router {r} fails"
            now = runs.event("now", label)
            if now is None:
                continue
            fixed = runs.event(advised, label) if advised else None
            measures = [
                Measure(
                    f"{label}: flows that change LB",
                    "flows",
                    now.moved,
                    fixed.moved if fixed else None,
                )
            ]
            summary = (
                f"taking {r} out (failure or maintenance) moves {pct(now.moved)} of all flows "
                f"to another LB node"
            )
            if now.lost:
                measures.append(Measure(f"{label}: flows left without a path", "flows", now.lost))
                summary += f"; {pct(now.lost)} have no other path"
            saves = fixed is not None and now.moved - fixed.moved >= MEASURABLE
            texts = []
            if now.lost:
                texts.append(
                    "clients that reach only this router lose their connections: give them a "
                    "second one (as topologies/hybrid.yaml does)"
                )
            if saves and fixed is not None:
                texts.append(f"apply the hashing fixes above: {pct(fixed.moved)} would move")
            elif now.moved >= MEASURABLE:
                texts.append("its flows can only move: the routers beside it reach other LB nodes")
            elif not now.lost:
                texts.append(
                    "nothing to fix: the routers beside it pick the same LB node for its flows"
                )
            text = "; ".join(texts)
            out.append(
                Finding(
                    "router-withdrawal",
                    INFO,
                    tier,
                    [r],
                    [],
                    summary,
                    now.moved,
                    fixed.moved if fixed else None,
                    measures,
                    Fix(text),
                )
            )
    return out
