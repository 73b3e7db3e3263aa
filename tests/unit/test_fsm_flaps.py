"""Flap resistance: soft failures over a window, per-VIP damping, and the recommended
settings (what `render node` writes) driven by seeded random check sequences. Pure: time is
passed in."""

from __future__ import annotations

import dataclasses
import random

import pytest

from anycast_ctl.agent.damping import Damping
from anycast_ctl.agent.fsm import (
    Announce,
    Transition,
    VipState,
    VipStatus,
    Withdraw,
    by_the_rules,
    step,
)
from anycast_ctl.agent.health import Health
from anycast_ctl.render.lb_layout import check_profile

S = VipState
OK, SOFT, HARD = Health.OK, Health.SOFT_FAIL, Health.HARD_FAIL
D = Damping(half_life=10.0, penalty=1000, suppress=2000, reuse=750, max_suppress=60)


def run(status, sequence, *, rise=3, fall=3, window=5, damping=None, start=0.0, every=1.0):
    """Feed (health) results `every` seconds apart; return the final status and all actions."""
    actions = []
    now = start
    for health in sequence:
        now += every
        status, acts = step(
            status, health, False, now, rise, fall, 0.0, window=window, damping=damping
        )
        actions += acts
    return status, actions


def up(now=0.0, **fields) -> VipStatus:
    return VipStatus(S.UP, 0, now, **fields)


# ---------------------------------------------------------------- the window (k of last n)
@pytest.mark.parametrize(
    "sequence, state, streak, withdrawn",
    [
        ([SOFT], S.FALLING, 1, False),
        ([SOFT, OK], S.FALLING, 1, False),  # the failure still counts in the window
        ([SOFT, OK, OK, OK, OK], S.FALLING, 1, False),  # 5 results: the failure is the oldest
        ([SOFT, OK, OK, OK, OK, OK], S.UP, 0, False),  # ...and now it left the window
        ([SOFT, OK, SOFT, OK, SOFT], S.DOWN, 0, True),  # 3 of the last 5, never 2 in a row
        ([SOFT, OK, OK, OK, SOFT, OK, SOFT], S.FALLING, 2, False),  # the first fell out
        ([SOFT, SOFT, OK, OK, OK, OK, OK, SOFT], S.FALLING, 1, False),
        ([OK, OK, HARD], S.DOWN, 0, True),  # hard: at once, window or not
    ],
)
def test_soft_failures_count_over_the_window(sequence, state, streak, withdrawn):
    status, actions = run(up(), sequence, fall=3, window=5)
    assert (status.state, status.streak) == (state, streak)
    assert (Withdraw() in actions) is withdrawn


def test_without_a_window_an_ok_forgives_every_failure():
    status, actions = run(up(), [SOFT, OK, SOFT, OK, SOFT, OK], fall=2, window=None)
    assert status.state is S.UP and Withdraw() not in actions
    status, actions = run(up(), [SOFT, SOFT], fall=2, window=None)
    assert status.state is S.DOWN and Withdraw() in actions


def test_window_smaller_than_fall_is_refused():
    with pytest.raises(ValueError):
        step(up(), OK, False, 1.0, 3, 5, 0.0, window=4)


def test_a_streak_counted_without_a_window_carries_over_into_one():
    falling = VipStatus(S.FALLING, 2, 0.0)  # e.g. before a reload that added a window
    status, actions = step(falling, SOFT, False, 1.0, 3, 3, 0.0, window=5)
    assert status.state is S.DOWN and actions[0] == Withdraw()


# ---------------------------------------------------------------- damping
def flap(status, now, failure=HARD, damping=D, rise=1):
    """One withdraw/announce cycle: a failure at `now`, rise OKs just after."""
    status, down = step(status, failure, False, now, rise, 1, 0.0, window=1, damping=damping)
    for i in range(rise):
        status, back = step(
            status, OK, False, now + 0.1 * (i + 1), rise, 1, 0.0, window=1, damping=damping
        )
        down += back
    return status, down


def test_two_quick_flaps_are_forgiven_the_third_is_suppressed():
    status = up()
    status, actions = flap(status, 1.0)
    assert status.state is S.UP and actions.count(Withdraw()) == 1 and Announce() in actions
    status, actions = flap(status, 2.0)
    assert status.state is S.UP and not status.suppressed  # ~1930 < 2000
    status, actions = flap(status, 3.0)
    assert status.state is S.SUPPRESSED and status.suppressed
    assert actions[0] == Withdraw() and Announce() not in actions  # withdrawn, and it stays
    entered = [a for a in actions if isinstance(a, Transition) and a.new is S.SUPPRESSED]
    assert entered and entered[0].reuse_at == pytest.approx(status.reuse_at(D))
    assert "announced then if still healthy" in entered[0].reason


def test_a_suppressed_vip_is_announced_once_the_penalty_decays_below_reuse():
    status = up()
    for t in (1.0, 2.0, 3.0):
        status, _ = flap(status, t)
    reuse_at = status.reuse_at(D)
    assert reuse_at is not None and 3.1 < reuse_at < 3.1 + 60
    # Healthy results before the reuse time change nothing...
    status, actions = step(status, OK, False, reuse_at - 0.01, 1, 1, 0.0, window=1, damping=D)
    assert status.state is S.SUPPRESSED and actions == []
    # ...a timer tick at the reuse time announces.
    status, actions = step(status, None, False, reuse_at + 1e-6, 1, 1, 0.0, window=1, damping=D)
    assert status.state is S.UP and actions[0] == Announce()
    assert not status.suppressed and status.penalty < D.reuse


def test_hard_failures_are_never_damped_away():
    """Damping only keeps a route out: the withdrawal itself is never delayed."""
    status = up(penalty=1900.0, penalty_at=0.0)
    status, actions = step(status, HARD, False, 0.5, 3, 8, 0.0, window=10, damping=D)
    assert actions[0] == Withdraw() and status.state is S.DOWN and status.suppressed


def test_suppressed_vips_fail_like_serving_ones_and_the_penalty_grows():
    status = VipStatus(S.SUPPRESSED, 0, 0.0, penalty=2500.0, penalty_at=0.0, suppressed=True)
    status, actions = step(status, HARD, False, 1.0, 3, 2, 0.0, window=4, damping=D)
    assert status.state is S.DOWN and status.suppressed
    assert [a for a in actions if not isinstance(a, Transition)] == []  # nothing was announced
    assert status.penalty == pytest.approx(2500 * 2 ** (-1 / 10) + 1000)


def test_max_suppress_caps_how_long_a_vip_is_held_out():
    status = up()
    for t in range(1, 40):  # a crash loop: a flap a second for 40 s
        status, _ = flap(status, float(t))
    assert status.penalty <= D.ceiling + 1e-6
    assert status.reuse_at(D) - status.penalty_at <= D.max_suppress + 1e-6


def test_drain_keeps_the_penalty_and_undrain_cannot_skip_the_suppression():
    status = up()
    for t in (1.0, 2.0, 3.0):
        status, _ = flap(status, t)
    assert status.state is S.SUPPRESSED
    status, _ = step(status, None, True, 4.0, 1, 1, 0.0, window=1, damping=D)
    assert status.state is S.DRAINED and status.suppressed
    status, _ = step(status, None, False, 4.5, 1, 1, 0.0, window=1, damping=D)
    status, actions = step(status, OK, False, 4.6, 1, 1, 0.0, window=1, damping=D)
    assert status.state is S.SUPPRESSED and Announce() not in actions


def test_damping_turned_off_releases_a_suppressed_vip():
    status = VipStatus(S.SUPPRESSED, 0, 0.0, penalty=5000.0, penalty_at=0.0, suppressed=True)
    status, actions = step(status, OK, False, 1.0, 3, 2, 0.0, window=4, damping=None)
    assert status.state is S.UP and actions[0] == Announce()


@pytest.mark.parametrize(
    "fields",
    [
        {"half_life": 0},
        {"half_life": 10, "reuse": 3000},
        {"half_life": 10, "penalty": 0},
        {"half_life": 10, "max_suppress": 0},
    ],
)
def test_damping_parameters_are_checked(fields):
    with pytest.raises(ValueError):
        Damping(**fields)


# ---------------------------------------------------------------- the recommended settings
RECOMMENDED = check_profile("recommended")


def recommended_step(status, health, now):
    t = RECOMMENDED.agent
    return step(
        status,
        health,
        False,
        now,
        t.rise,
        t.fall,
        0.0,
        window=t.window,
        damping=RECOMMENDED.damping.rule(),
    )


def withdrawals(late: float, seed: int, stepper, checks: int = 10_000) -> int:
    """A healthy service whose answers are late (soft failures) with probability `late`."""
    rng = random.Random(seed)
    interval = RECOMMENDED.agent.interval
    status, count = VipStatus(S.UP, 0, 0.0), 0
    for i in range(1, checks + 1):
        health = SOFT if rng.random() < late else OK
        status, actions = stepper(status, health, i * interval)
        count += actions.count(Withdraw())
    return count


def old_step(status, health, now):
    return step(status, health, False, now, 3, 2, 0.0)  # rise 3, fall 2 in a row


@pytest.mark.parametrize("late", [0.05, 0.10])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recommended_settings_never_withdraw_a_service_that_is_sometimes_late(late, seed):
    assert withdrawals(late, seed, recommended_step) == 0


@pytest.mark.parametrize("late", [0.05, 0.10])
def test_the_old_settings_did_flap(late):
    assert withdrawals(late, 1, old_step) >= 10  # what the recommended settings fix


def test_recommended_settings_withdraw_a_real_outage_within_2s():
    interval = RECOMMENDED.agent.interval
    rng = random.Random(7)
    status, now = VipStatus(S.UP, 0, 0.0), 0.0
    for _ in range(1000):  # a flaky but healthy history first
        now += interval
        status, _ = recommended_step(status, SOFT if rng.random() < 0.1 else OK, now)
    assert status.announced
    outage = now
    while status.announced:
        now += interval
        status, _ = recommended_step(status, SOFT, now)  # every answer too late: down
        assert now - outage <= 2.0, "still announced 2 s into the outage"


def test_recommended_settings_withdraw_a_haproxy_kill_at_the_first_result():
    status = VipStatus(S.FALLING, 5, 0.0, recent=(True,) * 5 + (False,) * 4)
    status, actions = recommended_step(status, HARD, 1.0)
    assert actions[0] == Withdraw() and status.state is S.DOWN


@pytest.mark.parametrize("seed", range(30))
def test_random_runs_with_window_and_damping_keep_the_route_invariants(seed):
    rng = random.Random(seed)
    rise, fall = rng.randint(1, 4), rng.randint(1, 4)
    window = fall + rng.randint(0, 4)
    damping = Damping(half_life=rng.choice([1.0, 5.0, 20.0]), max_suppress=30.0)
    status, now, drained, route = VipStatus.initial(0.0), 0.0, False, None
    for _ in range(3000):
        now += rng.choice([0.1, 0.1, 0.5, 2.0])
        if rng.random() < 0.02:
            drained = not drained
        health = rng.choices([None, OK, SOFT, HARD], weights=[2, 12, 3, 1])[0]
        new, actions = step(
            status, health, drained, now, rise, fall, 0.0, window=window, damping=damping
        )
        for action in actions:
            if isinstance(action, Announce):
                assert not new.suppressed, "announced while suppressed"
                route = action.graceful_shutdown
            elif isinstance(action, Withdraw):
                assert route is not None, "withdrew what is not announced"
                route = None
        assert new.route == route
        assert new.penalty <= damping.ceiling + 1e-6
        if health is HARD:
            assert route is None, "still announced after a hard failure"
        if new.state is S.SUPPRESSED:
            assert new.suppressed and not new.announced
        status = new


# ---------------------------------------------------------------- the steady-state shortcut
def test_a_healthy_vips_tick_returns_its_status_object_and_no_action():
    for window in (None, 4):
        status = up(penalty=300.0, penalty_at=1.0)
        new, actions = step(status, OK, False, 50.0, 3, 2, 0.0, window=window, damping=D)
        assert new is status and actions == []


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("window", [None, 4])
def test_the_shortcut_follows_the_rules_through_random_flaps(seed, window):
    # Two VIPs fed the same results: one by `step` (with the shortcut), one by the rules
    # alone. At every result: the same state, counts, actions and the same penalty now.
    rng = random.Random(seed)
    fast = slow = VipStatus.initial(0.0)
    now = 0.0
    for _ in range(400):
        now += rng.choice((0.1, 0.1, 0.1, 2.0))
        health = rng.choices((OK, SOFT, HARD), (90, 8, 2))[0]
        drained = rng.random() < 0.01
        args = (health, drained, now, 3, 2, 0.0)
        fast, fast_actions = step(fast, *args, window=window, damping=D)
        slow, slow_actions = by_the_rules(slow, *args, window=window, damping=D)
        assert _rounded(fast_actions) == _rounded(slow_actions)
        assert (fast.state, fast.streak, fast.since, fast.recent, fast.suppressed) == (
            slow.state,
            slow.streak,
            slow.since,
            slow.recent,
            slow.suppressed,
        )
        assert fast.penalty_now(D, now) == pytest.approx(slow.penalty_now(D, now), rel=1e-9)


def _rounded(actions):
    """Actions with suppression ends to the microsecond: a penalty re-based each tick and
    one left as it was decay along the same curve, up to float rounding."""
    return [
        dataclasses.replace(a, reuse_at=round(a.reuse_at, 6))
        if isinstance(a, Transition) and a.reuse_at is not None
        else a
        for a in actions
    ]
