"""The agent's first rise after start is paced fast; every other check runs at the interval."""

from anycast_ctl.agent import fsm
from anycast_ctl.agent.scheduling import FIRST_RISE_SPEEDUP, CheckScheduling


def scheduler(state: fsm.VipState, streak: int = 0) -> CheckScheduling:
    s = CheckScheduling()
    s._intervals = {"v": 0.1}
    s.first_rise = {"v"}
    s.statuses = {"v": fsm.VipStatus(state, streak, 0.0)}
    return s


def test_rising_after_start_is_paced_fast():
    s = scheduler(fsm.VipState.RISING, 1)
    assert s._pace("v") == 0.1 / FIRST_RISE_SPEEDUP
    assert "v" in s.first_rise


def test_a_failure_during_the_first_rise_returns_to_the_interval_for_good():
    s = scheduler(fsm.VipState.DOWN)
    assert s._pace("v") == 0.1
    s.statuses["v"] = fsm.VipStatus(fsm.VipState.RISING, 1, 0.0)
    assert s._pace("v") == 0.1  # the fast pace was for the first rise only


def test_once_up_the_interval_applies():
    s = scheduler(fsm.VipState.UP)
    assert s._pace("v") == 0.1
    assert not s.first_rise
