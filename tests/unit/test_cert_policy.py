"""Certificate expiry: warn, staggered withdraw, the metrics, through real TLS handshakes."""

from __future__ import annotations

import asyncio
import logging

import pytest
from checks_support import SERVICE_NAME, Server, make_tls_files
from prometheus_client import generate_latest

from anycast_ctl.agent.checks import checks_by_name, run_check
from anycast_ctl.agent.checks.cert_policy import (
    HASH_SLOTS,
    Level,
    judge,
    slot_of,
    withdraw_threshold,
)
from anycast_ctl.agent.health import Health
from anycast_ctl.agent.metrics import AgentMetrics
from anycast_ctl.config.loading import validate
from anycast_ctl.config.node import Certificates, NodeConfig
from anycast_ctl.errors import UserError


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize(
    ("slot", "slots", "threshold"),
    [(0, 3, 6.0), (1, 3, 3.0), (2, 3, 0.0), (0, 1, 0.0), (0, 2, 6.0), (1, 2, 0.0)],
)
def test_withdraw_threshold_is_staggered_and_the_last_slot_never_leaves_early(
    slot, slots, threshold
):
    policy = Certificates(warn_days=30, withdraw_days=6, slot=slot, slots=slots)
    assert withdraw_threshold("lb1", policy) == threshold


def test_nodes_sharing_a_certificate_never_all_withdraw_before_it_expires():
    nodes = [f"lb{i}" for i in range(5)]
    policies = {n: Certificates(withdraw_days=7, slot=i, slots=5) for i, n in enumerate(nodes)}
    moments = set()
    for tenth in range(100, -1, -1):  # 10.0 days left down to 0.0
        days = tenth / 10
        withdrawn = {n for n in nodes if judge(days, n, policies[n]) is Level.WITHDRAW}
        assert withdrawn != set(nodes), f"every node withdrawn at {days} days left"
        moments.add(frozenset(withdrawn))
    assert len(moments) == len(nodes)  # each node leaves at its own moment, one after another


def test_unset_slot_comes_from_a_stable_hash_of_the_node_name():
    policy = Certificates(withdraw_days=7)
    assert slot_of("lb1", policy) == slot_of("lb1", policy)
    assert {slot_of(f"lb{i}", policy)[0] for i in range(64)} == set(range(HASH_SLOTS))


@pytest.mark.parametrize(
    ("certificates", "message"),
    [
        ({"warn_days": 5, "withdraw_days": 7}, "withdraw_days (7) exceeds warn_days (5)"),
        ({"slot": 1}, "set slot and slots together"),
        ({"slot": 3, "slots": 3}, "slot 3 is not below slots 3"),
        ({"warn_days": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_certificate_settings_name_the_field(certificates, message):
    data = node_data(1234, None, certificates)
    with pytest.raises(UserError) as info:
        validate(NodeConfig, data, "node.yaml")
    (line,) = info.value.lines()
    assert line.startswith("node.yaml: certificates")
    assert message in line


def node_data(port: int, ca, certificates: dict) -> dict:
    return {
        "node": "lb1",
        "bgp": {
            "local_as": 65101,
            "router_id": "10.0.0.2",
            "neighbors": [{"address": "10.0.0.1", "local_address": "10.0.0.2", "peer_as": 65000}],
        },
        "checks": {
            "cert": {
                "type": "tls",
                "host": "127.0.0.1",
                "port": port,
                "server_name": SERVICE_NAME,
                **({"ca_file": str(ca)} if ca else {}),
            }
        },
        "vips": [{"address": "192.0.2.10", "checks": ["cert"]}],
        "certificates": certificates,
    }


def probe_through_the_policy(tls, label: str, certificates: dict, times: int = 1):
    async def main():
        async with Server(_hold, tls.server_context(label)) as server:
            config = validate(NodeConfig, node_data(server.port, tls.ca, certificates), "n.yaml")
            check = checks_by_name(config)["cert"]
            return [await run_check(check, 1.0) for _ in range(times)]

    return asyncio.run(main())


async def _hold(reader, writer):
    await reader.read()


def test_fewer_days_than_warn_days_is_healthy_but_marked_and_logged_once(tls, caplog):
    caplog.set_level(logging.INFO, logger="anycast_ctl.agent.checks.cert_policy")
    results = probe_through_the_policy(tls, "good", {"warn_days": 45}, times=3)
    for result in results:
        assert result.health is Health.OK
        assert result.detail.endswith("; expiring: fewer than warn_days 45")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "certificate warn" in warnings[0].getMessage()


def test_below_this_nodes_threshold_the_check_fails_and_the_last_slot_stays(tls):
    first = {"warn_days": 30, "withdraw_days": 6, "slot": 0, "slots": 3}
    (result,) = probe_through_the_policy(tls, "near", first)  # 5 days left
    assert result.health is Health.SOFT_FAIL
    assert "withdraw threshold 6 (withdraw_days 6, slot 0 of 3)" in result.detail
    (last,) = probe_through_the_policy(tls, "near", {**first, "slot": 2})
    assert last.health is Health.OK and "expiring" in last.detail


def test_days_left_and_both_thresholds_are_metrics(tls):
    (result,) = probe_through_the_policy(
        tls, "near", {"warn_days": 30, "withdraw_days": 6, "slot": 1, "slots": 3}
    )
    metrics = AgentMetrics("lb1")
    metrics.observe_check(result)
    text = generate_latest(metrics.registry).decode()
    (days,) = [ln for ln in text.splitlines() if ln.startswith("anycast_certificate_days_left{")]
    assert 4.9 < float(days.split()[-1]) <= 5.0
    assert 'anycast_certificate_warn_days{check="cert"} 30.0' in text
    assert 'anycast_certificate_withdraw_days{check="cert"} 3.0' in text


def test_status_json_marks_each_tls_check_with_the_policys_verdict(tls):
    from anycast_ctl.agent.status import certificate_view

    first = {"warn_days": 30, "withdraw_days": 6, "slot": 0, "slots": 3}
    (withdrawing,) = probe_through_the_policy(tls, "near", first)  # 5 days left
    (expiring,) = probe_through_the_policy(tls, "near", {**first, "slot": 2})
    (fine,) = probe_through_the_policy(tls, "good", {"warn_days": 10})
    views = [certificate_view(r.extra) for r in (withdrawing, expiring, fine)]
    assert [v["level"] for v in views if v] == ["withdraw", "warn", "ok"]
    assert views[1] is not None and 4.9 < float(views[1]["days_left"]) <= 5.0
    assert (views[1]["warn_days"], views[1]["withdraw_days"]) == (30, 0)
    assert certificate_view({"other": 1}) is None  # not a TLS check


def test_the_agents_observer_applies_the_policy_to_its_tls_checks(tls):
    # The running agent builds its checks in Observer, not checks_by_name: both must wrap.
    from anycast_ctl.agent.checks.cert_policy import CertificatePolicyCheck
    from anycast_ctl.agent.observe import Observer

    config = validate(NodeConfig, node_data(4443, tls.ca, {"warn_days": 45}), "n.yaml")
    assert isinstance(Observer(config).checks["cert"], CertificatePolicyCheck)
