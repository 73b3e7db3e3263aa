"""Agent metrics: exposition names and values operators will alert on."""

from prometheus_client import generate_latest

from anycast_ctl.agent.fsm import VipState
from anycast_ctl.agent.health import CheckResult, Health
from anycast_ctl.agent.metrics import AgentMetrics


def test_vip_state_is_one_hot_and_transitions_count():
    m = AgentMetrics("lb1")
    m.set_vip("192.0.2.10/32", VipState.UP, announced=True, drained=False)
    m.transition("192.0.2.10/32", VipState.RISING, VipState.UP)
    m.observe_check(CheckResult("web", Health.HARD_FAIL, "refused", 0.002, 0.0))
    text = generate_latest(m.registry).decode()
    assert 'anycast_vip_state{state="up",vip="192.0.2.10/32"} 1.0' in text
    assert 'anycast_vip_state{state="down",vip="192.0.2.10/32"} 0.0' in text
    assert 'anycast_vip_announced{vip="192.0.2.10/32"} 1.0' in text
    assert (
        'anycast_vip_transitions_total{from_state="rising",to_state="up",vip="192.0.2.10/32"} 1.0'
        in text
    )
    assert 'anycast_check_results_total{check="web",health="hard"} 1.0' in text
    assert 'anycast_check_latency_seconds_count{check="web"} 1.0' in text


def test_a_suppressed_vip_shows_its_penalty_and_reuse_time():
    State = VipState
    m = AgentMetrics("lb1")
    damping = {"penalty": 2150.0, "suppressed": True, "reuse_at": 1_700_000_014.0}
    m.set_vip("192.0.2.10/32", State.SUPPRESSED, False, False, damping)
    text = generate_latest(m.registry).decode()
    assert 'anycast_vip_suppressed{vip="192.0.2.10/32"} 1.0' in text
    assert 'anycast_vip_flap_penalty{vip="192.0.2.10/32"} 2150.0' in text
    assert 'anycast_vip_reuse_timestamp_seconds{vip="192.0.2.10/32"} 1.700000014e+09' in text
    assert 'anycast_vip_state{state="suppressed",vip="192.0.2.10/32"} 1.0' in text
    m.set_vip("192.0.2.10/32", State.UP, True, False)
    text = generate_latest(m.registry).decode()
    assert 'anycast_vip_suppressed{vip="192.0.2.10/32"} 0.0' in text
