"""The simulator's prediction from what each router's FIB holds per VIP (the members and
their kernel order): what `lab traffic` and the failover experiments check flows against."""

from __future__ import annotations

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.lab.experiments.traffic import plan_flows
from anycast_ctl.sim.fabric import Fabric
from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.predict import predict_held, predict_lbs

DEFAULT = load_topology("topologies/default.yaml")
TWO = load_topology("topologies/two-routers.yaml")


def _tuples(topo, n):
    return [f.five_tuple for f in plan_flows(topo, n)]


def test_the_topology_order_gives_the_converged_prediction():
    flows = _tuples(DEFAULT, 200)
    held = {"web": {"r1": ["lb1", "lb2", "lb3"]}}
    assert predict_held(DEFAULT, flows, held) == predict_lbs(DEFAULT, FlowArrays.from_tuples(flows))


def test_the_kernels_order_decides():
    flows = _tuples(DEFAULT, 200)
    reordered = predict_held(DEFAULT, flows, {"web": {"r1": ["lb3", "lb1", "lb2"]}})
    expected = predict_lbs(
        DEFAULT, FlowArrays.from_tuples(flows), nexthop_order={"r1": ["lb3", "lb1", "lb2"]}
    )
    assert reordered == expected
    assert reordered != predict_held(DEFAULT, flows, {"web": {"r1": ["lb1", "lb2", "lb3"]}})


def test_only_the_nexthops_a_router_holds_are_used():
    flows = _tuples(DEFAULT, 200)
    assert set(predict_held(DEFAULT, flows, {"web": {"r1": ["lb2", "lb3"]}})) == {"lb2", "lb3"}
    assert predict_held(DEFAULT, flows, {"web": {"r1": []}}) == [None] * 200


def test_each_vip_has_its_own_nexthops():
    flows = plan_flows(TWO, 400)
    fabric = Fabric.from_topology(TWO)
    held = {
        v: {r: list(fabric.candidates(r, i)) for r in ("r1", "r2")}
        for i, v in enumerate(("web", "api"))
    }
    predicted = predict_held(TWO, [f.five_tuple for f in flows], held)
    assert {p for f, p in zip(flows, predicted, strict=True) if f.vip == "api"} == {"lb3", "lb4"}
    web = {p for f, p in zip(flows, predicted, strict=True) if f.vip == "web"}
    assert web == {"lb1", "lb2", "lb3", "lb4"}


def test_a_nexthop_that_is_no_neighbour_is_refused():
    with pytest.raises(ValueError, match="distinct downstream neighbours"):
        predict_held(DEFAULT, _tuples(DEFAULT, 3), {"web": {"r1": ["lb1", "c1"]}})
    with pytest.raises(ValueError, match="not a VIP"):
        predict_held(DEFAULT, [("100.64.255.1", "198.51.100.1", 6, 1, 2)], {})
