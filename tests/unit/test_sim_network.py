"""Flows walked through whole topologies: shares, events, polarization, predictions."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from anycast_ctl.config.loading import validate
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.sim.algorithms import ALGORITHMS, linux_settings
from anycast_ctl.sim.fabric import Event, Fabric, apply, parse_event
from anycast_ctl.sim.flows import generate
from anycast_ctl.sim.linux import select_nexthops
from anycast_ctl.sim.predict import predict_lbs, predict_paths
from anycast_ctl.sim.run import simulate

TOPOLOGIES = Path(__file__).parents[2] / "topologies"


def topo(name) -> Topology:
    return load_topology(TOPOLOGIES / f"{name}.yaml")


def flows(t, n=60_000, seed=3):
    return list(generate(t, n, seed=seed))


def with_hashing(name, **hashing):
    data = yaml.safe_load((TOPOLOGIES / f"{name}.yaml").read_text())
    data["hashing"] = {**data["hashing"], **hashing}
    for r in data["routers"]:
        r.pop("hashing", None)
    return validate(Topology, data, "t.yaml")


@pytest.mark.parametrize("algorithm", ["linux", "hash-threshold", "modulo"])
def test_two_tiers_with_one_seed_polarize_and_different_seeds_do_not(algorithm):
    t = topo("leaf-spine")
    shared = simulate(t, flows(t), events=[], algorithm=algorithm, same_seed=True)
    assert {p.router for p in shared.polarized} == {"s1", "s2"}
    assert all(len(p.unused) >= 4 for p in shared.polarized)  # half of each spine's LB links idle
    apart = simulate(t, flows(t), events=[], algorithm=algorithm)  # the spines' seed is their own
    assert apart.polarized == []
    assert max(p.imbalance for p in apart.polarization) < 1.1


def test_polarized_spines_still_balance_the_lbs_overall_but_not_their_links():
    t = topo("leaf-spine")
    r = simulate(t, flows(t), events=[], same_seed=True)
    assert r.imbalance < 1.05
    s1 = {h.nexthop: h.share for h in r.nexthops if h.router == "s1"}
    assert s1["lb5"] == 0 and s1["lb1"] == pytest.approx(0.25, abs=0.02)


def test_default_withdraw_with_linux_hash_threshold_moves_half_the_flows():
    t = topo("default")
    r = simulate(t, flows(t), events=[parse_event("withdraw:lb1", t)])
    e = r.events[0]
    share_lb1 = r.lbs[0].flow_share
    assert e.own == pytest.approx(share_lb1)  # every flow of lb1 moves ...
    assert e.moved == pytest.approx(
        0.5, abs=0.01
    )  # ... and hash-threshold moves 1/2 in all (first region)
    assert e.collateral == pytest.approx(e.moved - e.own)


def test_resilient_withdraw_has_no_collateral_and_add_takes_a_fair_share():
    t = with_hashing("default", algorithm="resilient")
    r = simulate(t, flows(t), events=[parse_event("withdraw:lb2", t), parse_event("add", t)])
    withdraw, add = r.events
    assert withdraw.collateral == 0 and withdraw.own == pytest.approx(1 / 3, abs=0.02)
    assert add.target == "lb4" and add.own == pytest.approx(1 / 4, abs=0.02) and add.collateral == 0


def test_link_failure_to_an_lb_in_a_single_router_topology_equals_its_withdraw():
    t = topo("default")
    fl = flows(t)
    r = simulate(t, fl, events=[parse_event("withdraw:lb3", t), parse_event("link:r1-lb3", t)])
    w, link = r.events
    assert (w.moved, w.own, w.collateral) == (link.moved, link.own, link.collateral)


def test_router_failure_loses_its_clients_flows_and_link_failure_reroutes():
    t = topo("two-routers")
    r = simulate(t, flows(t), events=[parse_event("router:r1", t), parse_event("link:r2-lb4", t)])
    router, link = r.events
    c1_share = 0.5  # two clients of equal weight; c1 only reaches r1
    assert router.lost == pytest.approx(c1_share, abs=0.01) and router.moved == 0
    assert link.lost == 0 and link.own > 0


def test_a_vip_only_reaches_the_lbs_that_announce_it():
    t = topo("two-routers")
    r = simulate(t, flows(t), events=[])
    api = next(v for v in r.vips if v.name == "api")
    assert [s.name for s in api.lbs] == ["lb3", "lb4"]
    assert api.imbalance < 1.05


def test_weights_shift_the_share():
    data = yaml.safe_load((TOPOLOGIES / "default.yaml").read_text())
    data["routers"][0]["hashing"] = {"weights": {"lb1": 2}}
    t = validate(Topology, data, "t.yaml")
    r = simulate(t, flows(t), events=[])
    assert [round(s.flow_share, 2) for s in r.lbs] == [0.5, 0.25, 0.25]


def test_results_do_not_depend_on_the_chunk_size():
    t = topo("leaf-spine")
    fl = flows(t, 20_000)
    assert simulate(t, fl, chunk=1_000).to_dict() == simulate(t, fl).to_dict()


def test_every_algorithm_routes_every_flow_in_every_shipped_topology():
    for path in sorted(TOPOLOGIES.glob("*.yaml")):
        t = topo(path.stem)
        for algorithm in ALGORITHMS:
            r = simulate(t, flows(t, 5_000), events=[], algorithm=algorithm)
            assert r.unroutable == 0 and sum(s.flows for s in r.lbs) == 5_000


def test_prediction_for_a_linux_router_is_the_kernel_models_choice():
    t = topo("default")
    batch = flows(t, 3_000)[0]
    settings = linux_settings(t.hashing_for("r1"))
    expected = np.array(t.downstream("r1"))[select_nexthops(batch.flows, [1, 1, 1], settings)]
    assert predict_lbs(t, batch.flows) == expected.tolist()


def test_prediction_follows_the_given_next_hop_order_and_events():
    t = topo("default")
    batch = flows(t, 3_000)[0]
    base = predict_lbs(t, batch.flows)
    reordered = predict_lbs(t, batch.flows, nexthop_order={"r1": ["lb3", "lb2", "lb1"]})
    assert reordered != base and sorted(set(reordered)) == ["lb1", "lb2", "lb3"]
    after = predict_lbs(t, batch.flows, events=["withdraw:lb1"])
    assert "lb1" not in after
    # hash-threshold: the last region only grows when the first is removed, so lb3 keeps its flows
    assert all(b == "lb3" for a, b in zip(base, after, strict=True) if a == "lb3")


def test_predicted_paths_cross_one_router_per_tier():
    t = topo("leaf-spine")
    batch = flows(t, 2_000)[0]
    paths = predict_paths(t, batch.flows)
    assert {len(p) for p in paths} == {3}
    assert {p[0] for p in paths} == {"l1", "l2"} and {p[1] for p in paths} == {"s1", "s2"}


def test_events_name_nodes_of_the_topology():
    t = topo("leaf-spine")
    assert parse_event("link:l1-s2", t) == Event("link", "l1-s2", ("l1", "s2"))
    for bad in ("withdraw:s1", "router:lb1", "link:l1-l2", "add:lb1", "explode:lb1"):
        with pytest.raises(ValueError):
            parse_event(bad, t)


def test_adding_an_lb_links_it_to_every_last_tier_router():
    t = topo("leaf-spine")
    after = apply(Fabric.from_topology(t), parse_event("add", t))
    assert after.candidates("s1", 0)[-1] == "lb9" and after.candidates("s2", 0)[-1] == "lb9"


def test_hybrid_an_edge_router_going_moves_no_flow_and_loses_none():
    t = topo("hybrid")
    fl = flows(t)
    r = simulate(t, fl, events=[parse_event("router:r1", t), parse_event("router:r2", t)])
    assert {s.name for s in r.lbs} == {"lb1", "lb2", "lb3"} and r.imbalance < 1.05
    assert r.polarized == []  # the edge seed is not the upstream router's
    for e in r.events:
        assert (e.moved, e.lost) == (0, 0)
    split = {h.nexthop: h.share for h in r.nexthops if h.router == "u1"}
    assert split == pytest.approx({"r1": 0.5, "r2": 0.5}, abs=0.01)
