"""`sim advise`: the proposed fixes (tables of topologies -> changes) and the measured findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from anycast_ctl.config.loading import validate
from anycast_ctl.config.topology import Algorithm, Hashing, Topology, load_topology
from anycast_ctl.sim.advise import Advice, advise
from anycast_ctl.sim.advise_fixes import hashing_fix, order_fix, signature
from anycast_ctl.sim.advise_model import Finding
from anycast_ctl.sim.run import flow_batches

TOPOLOGIES = Path(__file__).parents[2] / "topologies"


def raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((TOPOLOGIES / f"{name}.yaml").read_text())
    return data


def make(data: dict[str, Any]) -> Topology:
    return validate(Topology, data, "t.yaml")


def seeds(name: str, **per_router: int | None) -> Topology:
    """A shipped topology with the given routers' own seeds (None: no own hashing)."""
    data = raw(name)
    for r in data["routers"]:
        if r["name"] in per_router:
            seed = per_router[r["name"]]
            r.pop("hashing", None)
            if seed is not None:
                r["hashing"] = {"seed": seed}
    return make(data)


def reversed_links(name: str, router: str) -> Topology:
    """A shipped topology where `router` lists its downstream links in reverse order."""
    data = raw(name)
    mine = [link for link in data["links"] if link["a"] == router]
    at = data["links"].index(mine[0])
    rest = [link for link in data["links"] if link not in mine]
    data["links"] = rest[:at] + mine[::-1] + rest[at:]
    return make(data)


def run(topo: Topology, flows: int = 200_000) -> Advice:
    return advise(topo, lambda: flow_batches(topo, flows=flows, seed=1))


def kinds(advice: Advice, kind: str) -> list[Finding]:
    return [f for f in advice.findings if f.kind == kind]


@pytest.mark.parametrize(
    ("a", "b", "alike"),
    [
        (Hashing(seed=1), Hashing(seed=1), True),
        (Hashing(seed=1), Hashing(seed=2), False),
        (Hashing(fields=0x37), Hashing(fields=0x07), False),
        (Hashing(policy=3), Hashing(policy=1), False),
        (Hashing(weights={"lb1": 2}), Hashing(), True),  # weights are capacity, not hashing
        (
            Hashing(algorithm=Algorithm.MAGLEV, policy=1),
            Hashing(algorithm=Algorithm.MAGLEV, policy=3),
            True,
        ),
        (
            Hashing(algorithm=Algorithm.MAGLEV, table_size=251),
            Hashing(algorithm=Algorithm.MAGLEV),
            False,
        ),
        (
            Hashing(algorithm=Algorithm.RESILIENT, seed=1),
            Hashing(algorithm=Algorithm.HASH_THRESHOLD, seed=1),
            False,
        ),
    ],
)
def test_routers_hash_alike_when_their_choice_depends_on_the_same_settings(a, b, alike):
    assert (signature(a) == signature(b)) is alike


@pytest.mark.parametrize(
    ("topo", "changes", "fresh"),
    [
        # per-spine seeds: the second spine takes the first one's (a tie goes to the first)
        (seeds("leaf-spine", s1=0x51E1, s2=0x51E2), {"s2": {"seed": 0x51E1}}, {}),
        # both spines on the leaves' seed: polarization; the spine tier gets a fresh seed
        (
            seeds("leaf-spine", s1=None, s2=None),
            {"s1": {"seed": 0x6EED}, "s2": {"seed": 0x6EED}},
            {"spine": 0x6EED},
        ),
        # the advised file: nothing to change
        (load_topology(TOPOLOGIES / "leaf-spine.yaml"), {}, {}),
        (load_topology(TOPOLOGIES / "hybrid.yaml"), {}, {}),
        # a single-router tier is uniform by definition
        (load_topology(TOPOLOGIES / "default.yaml"), {}, {}),
    ],
    ids=["per-spine", "polarized", "leaf-spine", "hybrid", "default"],
)
def test_hashing_fix_makes_each_tier_uniform_and_tiers_apart(topo, changes, fresh):
    fix = hashing_fix(topo)
    assert fix.changes == changes
    assert fix.fresh_seed == fresh
    fixed = fix.topology
    for tier in fixed.tiers:
        assert len({signature(fixed.hashing_for(r)) for r in fixed.routers_in(tier)}) == 1
    firsts = [signature(fixed.hashing_for(fixed.routers_in(t)[0])) for t in fixed.tiers]
    assert len(set(firsts)) == len(firsts)


@pytest.mark.parametrize(
    ("r3_seed", "changes"),
    [
        # r1 0x1234, r2 0xed6e, r3 0xed6e: the majority's seed
        (0xED6E, {"r1": {"seed": 0xED6E}}),
        # r1 0x1234, r2 0xed6e, r3 0x5eed: each once, the first router's seed wins the tie
        (0x5EED, {"r2": {"seed": 0x1234}, "r3": {"seed": 0x1234}}),
    ],
)
def test_hashing_fix_follows_the_majority_of_a_tier(r3_seed, changes):
    data = raw("hybrid")
    data["routers"][1]["hashing"] = {"seed": 0x1234}
    data["routers"].append(
        {"name": "r3", "asn": 65010, "tier": "edge", "hashing": {"seed": r3_seed}}
    )
    data["links"] += [{"a": "u1", "b": "r3"}] + [{"a": "r3", "b": f"lb{i}"} for i in (1, 2, 3)]
    assert hashing_fix(make(data)).changes == changes


@pytest.mark.parametrize(
    ("topo", "expected"),
    [
        (reversed_links("leaf-spine", "s2"), {"s2": [f"lb{i}" for i in range(1, 9)]}),
        (reversed_links("hybrid", "u1"), {}),  # a single-router tier cannot disagree
        (load_topology(TOPOLOGIES / "leaf-spine.yaml"), {}),
    ],
    ids=["reversed-spine", "single-router-tier", "leaf-spine"],
)
def test_order_fix_lists_shared_next_hops_in_the_tiers_order(topo, expected):
    assert order_fix(topo) == expected


def test_a_spine_failure_moves_what_per_spine_seeds_cost_and_nothing_with_one_seed():
    advice = run(load_topology(TOPOLOGIES / "leaf-spine-per-spine-seeds.yaml"))
    (finding,) = kinds(advice, "tier-seeds-differ")
    assert (finding.severity, finding.tier, finding.routers) == ("warning", "spine", ["s1", "s2"])
    assert round(finding.flows_at_stake, 3) == 0.438  # 1/2 of the flows x 7/8 land elsewhere
    assert finding.flows_at_stake_with_fix == 0.0
    assert finding.fix.hashing == {"s2": {"seed": 0x51E1}}
    shared = run(load_topology(TOPOLOGIES / "leaf-spine.yaml"))
    assert kinds(shared, "tier-seeds-differ") == kinds(shared, "polarization") == []
    spines = [f for f in kinds(shared, "router-withdrawal") if f.tier == "spine"]
    assert [f.flows_at_stake for f in spines] == [0.0, 0.0]


def test_default_topology_withdrawing_lb1_moves_half_a_third_of_it_its_own():
    advice = run(load_topology(TOPOLOGIES / "default.yaml"))
    assert {f.kind for f in advice.findings} == {"lb-withdrawal"}
    lb1 = next(f for f in advice.findings if f.lbs == ["lb1"])
    figures = {m.what.split(": ")[1]: round(100 * m.now, 1) for m in lb1.measures}
    assert figures["flows that change LB"] == 50.0
    assert figures["its own flows"] == 33.3
    assert figures["flows moved between other LBs (collateral)"] == 16.8
    assert lb1.routers == ["r1"] and lb1.severity == "info"
    collateral = next(m for m in lb1.measures if "collateral" in m.what)
    assert collateral.with_fix == 0.0  # resilient groups move only the node's own flows
    lb2 = next(f for f in advice.findings if f.lbs == ["lb2"])
    assert lb2.fix.text.startswith("nothing to fix")  # the middle region: no collateral


def test_tiers_that_hash_alike_are_polarized_until_the_later_tier_gets_its_own_seed():
    advice = run(seeds("leaf-spine", s1=None, s2=None), flows=40_000)
    (finding,) = kinds(advice, "polarization")
    assert finding.severity == "warning" and finding.tier == "spine"
    assert finding.routers == ["l1", "l2", "s1", "s2"]
    assert "s1>lb5" in finding.summary and "s2>lb1" in finding.summary
    assert all(
        m.now > 1.9 and m.with_fix is not None and m.with_fix < 1.1 for m in finding.measures
    )
    assert (finding.flows_at_stake, finding.flows_at_stake_with_fix) == (1.0, 0.0)
    assert finding.fix.hashing == {"s1": {"seed": 0x6EED}, "s2": {"seed": 0x6EED}}


def test_siblings_listing_next_hops_in_other_orders_move_flows_on_a_failure():
    advice = run(reversed_links("leaf-spine", "s2"), flows=40_000)
    (finding,) = kinds(advice, "nexthop-order")
    assert finding.severity == "warning" and finding.routers == ["s1", "s2"]
    assert finding.flows_at_stake > 0.45 and finding.flows_at_stake_with_fix == 0.0
    assert finding.fix.nexthop_order == {"s2": [f"lb{i}" for i in range(1, 9)]}


def test_with_both_problems_only_both_fixes_together_keep_every_flow():
    topo = reversed_links("leaf-spine-per-spine-seeds", "s2")  # and s1, s2 have their own seeds
    advice = run(topo, flows=40_000)
    seeds_finding, order_finding = kinds(advice, "tier-seeds-differ") + kinds(
        advice, "nexthop-order"
    )
    for f in (seeds_finding, order_finding):
        assert f.severity == "warning"
        assert f.flows_at_stake_with_fix is not None and f.flows_at_stake_with_fix > 0.4
        assert all(m.with_all_fixes == 0.0 for m in f.measures if m.with_all_fixes is not None)
        assert any(m.with_all_fixes == 0.0 for m in f.measures)


def test_single_homed_clients_make_a_router_failure_lose_flows_not_move_them():
    advice = run(load_topology(TOPOLOGIES / "two-routers.yaml"), flows=40_000)
    (finding,) = kinds(advice, "tier-seeds-differ")
    assert finding.severity == "info" and finding.flows_at_stake == 0.0
    assert "reaches only one of them" in finding.summary
    lost = [m for m in finding.measures if m.what.endswith("without a path")]
    assert [round(m.now, 1) for m in lost] == [0.5, 0.5]
    r1 = next(f for f in kinds(advice, "router-withdrawal") if f.routers == ["r1"])
    assert "give them a second one" in r1.fix.text


def test_the_hybrid_topology_loses_nothing_when_an_edge_router_goes():
    topo = load_topology(TOPOLOGIES / "hybrid.yaml")
    assert topo.cross_check() == []
    advice = run(topo, flows=40_000)
    assert [f.kind for f in advice.findings if f.severity == "warning"] == []
    edges = {f.routers[0]: f for f in kinds(advice, "router-withdrawal")}
    assert sorted(edges) == ["r1", "r2"]
    for f in edges.values():
        assert f.flows_at_stake == 0.0
        assert not any(m.what.endswith("without a path") for m in f.measures)


def test_findings_serialize_to_plain_values():
    advice = run(load_topology(TOPOLOGIES / "leaf-spine-per-spine-seeds.yaml"), flows=20_000)
    data = advice.findings[0].to_dict()
    assert set(data) == {
        "kind",
        "severity",
        "tier",
        "routers",
        "lbs",
        "summary",
        "flows_at_stake",
        "flows_at_stake_with_fix",
        "measures",
        "fix",
    }
    assert data["fix"] == {
        "text": "give the spine routers one hashing: s2: seed 0x51e1",
        "hashing": {"s2": {"seed": 0x51E1}},
        "nexthop_order": {},
    }
