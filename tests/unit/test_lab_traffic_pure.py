"""lab traffic's pure parts: flow planning, peer -> LB mapping, results (the prediction is
the simulator's: tests/unit/test_sim_predict_held.py)."""

from __future__ import annotations

import ipaddress

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab.experiments.traffic import (
    FlowResult,
    TrafficResult,
    expected_outcome,
    lb_of_peer,
    plan_flows,
)
from anycast_ctl.lab.observe.expect import address_owners
from anycast_ctl.lab.programs.backend import ProxyHeader, answer_line, parse_answer, parse_listen

DEFAULT = load_topology("topologies/default.yaml")
TWO = load_topology("topologies/two-routers.yaml")


def test_flows_have_distinct_source_ports_and_stay_in_client_prefixes():
    flows = plan_flows(TWO, 100, first_port=30000, sources=4)
    assert [f.sport for f in flows] == list(range(30000, 30100))
    prefixes = {c.name: c.prefix(4) for c in TWO.clients}
    assert all(ipaddress.ip_address(f.src) in prefixes[f.client] for f in flows)
    assert len({f.src for f in flows}) == 2 * 4  # 4 sources in each of the 2 clients


def test_flows_cover_every_client_and_vip_pair_evenly():
    flows = plan_flows(TWO, 400)
    pairs = {}
    for f in flows:
        pairs[(f.client, f.vip)] = pairs.get((f.client, f.vip), 0) + 1
    assert pairs == {(c, v): 100 for c in ("c1", "c2") for v in ("web", "api")}
    api = next(f for f in flows if f.vip == "api")
    assert (api.dst, api.dport, api.server_name) == ("192.0.2.20", 443, "api.anycast.test")


def test_same_arguments_give_the_same_flows():
    assert plan_flows(DEFAULT, 50, 25000, 3) == plan_flows(DEFAULT, 50, 25000, 3)


@pytest.mark.parametrize("args", [(0, 20000, 8), (10, 65530, 8), (10, 80, 8), (10, 20000, 0)])
def test_bad_flow_arguments_are_user_errors(args):
    with pytest.raises(UserError):
        plan_flows(DEFAULT, *args)


def test_peer_address_maps_to_the_lb_holding_it():
    plan = DEFAULT.address_plan()
    owners = address_owners(plan)
    lb2_to_be1 = plan.interface("lb2", "be1").ipv4.ip
    assert lb_of_peer(f"{lb2_to_be1}:40000", owners, {"lb1", "lb2", "lb3"}) == "lb2"
    r1 = plan.interface("r1", "lb1").ipv4.ip
    assert lb_of_peer(f"{r1}:1", owners, {"lb1", "lb2", "lb3"}) is None  # a router is no LB
    assert lb_of_peer("nonsense", owners, {"lb1"}) is None
    assert lb_of_peer(None, owners, {"lb1"}) is None


def test_backend_answer_round_trips():
    header = ProxyHeader("PROXY", "198.18.1.7:20001", "192.0.2.10:443", "lb1-1-2-3")
    assert parse_answer(answer_line("be1", ("100.64.0.8", 4242), header).decode()) == {
        "backend": "be1",
        "peer": "100.64.0.8:4242",
        "client": "198.18.1.7:20001",
        "id": "lb1-1-2-3",
    }
    assert parse_answer("garbage") == {}
    assert parse_listen("[fd00::1]:443") == ("fd00::1", 443)
    with pytest.raises(ValueError):
        parse_listen("100.64.0.1")


def test_traffic_result_counts():
    def flow(lb, predicted, ok=True):
        return FlowResult(
            "c1",
            "web",
            "198.18.1.1",
            1,
            "192.0.2.10",
            443,
            ok,
            lb=lb,
            predicted=predicted,
            error=None if ok else "timeout",
        )

    result = TrafficResult(
        [flow("lb1", "lb1"), flow("lb2", "lb1"), flow(None, "lb3", ok=False), flow("lb1", "lb1")]
    )
    assert result.shares() == {"lb1": 2, "lb2": 1}
    assert result.agreement() == (2, 4)
    assert [f.lb for f in result.mismatches()] == ["lb2"]
    assert len(result.failed()) == 1
    assert result.to_json()["as_predicted"] == 2


EDGE = load_topology("topologies/edge.yaml")


def test_the_policy_is_part_of_the_prediction():
    flows = plan_flows(EDGE, 6)  # one per (client, VIP): web, mtls, shop x c1, c2
    expected = {(f.client, f.vip): expected_outcome(f, EDGE) for f in flows}
    assert expected[("c2", "web")] == "refused-by-allow-list"  # 198.18.2.0/24 not admitted
    assert {k: v for k, v in expected.items() if v != "ok"} == {
        ("c2", "web"): "refused-by-allow-list"
    }
    without = {(f.client, f.vip): expected_outcome(f, EDGE, client_cert=False) for f in flows}
    assert without[("c1", "mtls")] == without[("c2", "mtls")] == "tls-alert"


def test_a_refusal_the_policy_predicts_is_as_predicted_and_any_other_is_not():
    def flow(ok, expected, reason=None, lb=None):
        return FlowResult(
            "c2", "web", "198.18.2.1", 1, "192.0.2.10", 443, ok,
            lb=lb, predicted="lb1", reason=reason, expected=expected,
        )  # fmt: skip

    refused = flow(False, "refused-by-allow-list", reason="refused-by-allow-list")
    admitted_anyway = flow(True, "refused-by-allow-list", lb="lb1")
    other_reason = flow(False, "refused-by-allow-list", reason="timeout")
    rate_limited = flow(False, "ok", reason="rate-limited")
    result = TrafficResult([refused, admitted_anyway, other_reason, rate_limited])
    assert [f.agrees for f in result.flows] == [True, False, False, False]
    assert result.agreement() == (1, 4)
    assert result.mismatches() == [admitted_anyway, other_reason]
    assert result.to_json()["flows"][0]["expected"] == "refused-by-allow-list"
