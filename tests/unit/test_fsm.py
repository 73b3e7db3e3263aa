"""The per-VIP state machine: every transition as a table row, plus random-sequence properties."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Literal

import pytest

from anycast_ctl.agent.damping import Damping
from anycast_ctl.agent.fsm import (
    Announce,
    Transition,
    VipState,
    VipStatus,
    Withdraw,
    combine,
    initial_actions,
    is_announced,
    resync,
    step,
)
from anycast_ctl.agent.health import Health

S = VipState
OK, SOFT, HARD = Health.OK, Health.SOFT_FAIL, Health.HARD_FAIL
SINCE = 50.0
NOW = 100.0
UNTIL = 130.0  # graceful_until of the DRAINING rows: still in the period at NOW
# The SUPPRESSED rows: penalty 3000 at NOW, so still above reuse at NOW, below it at LATER.
DAMPING = Damping(half_life=10.0)
LATER = NOW + 100


@dataclass(frozen=True)
class Row:
    state: VipState
    streak: int
    health: Health | None
    drained: bool
    new_state: VipState
    new_streak: int
    route: str  # "-" nothing, "announce", "announce-gshut", "withdraw"
    rise: int = 3
    fall: int = 2
    graceful: float = 0.0
    now: float = NOW
    damped: bool = False  # run with DAMPING (always, for SUPPRESSED rows)

    def id(self) -> str:
        health = self.health.value if self.health else "tick"
        drained = " drained" if self.drained else ""
        params = f"rise={self.rise},fall={self.fall},g={self.graceful:g},now={self.now:g}"
        params += ",damped" if self.damped else ""
        return (
            f"{self.state}/{self.streak} {health}{drained} ({params})"
            f" -> {self.new_state}/{self.new_streak} {self.route}"
        )


def R(state, streak, health, drained, new_state, new_streak, route="-", **params) -> Row:
    return Row(state, streak, health, drained, new_state, new_streak, route, **params)


ANY_HEALTH = (None, OK, SOFT, HARD)

TABLE = [
    # ---- INIT: nothing announced, nothing counted
    R(S.INIT, 0, None, False, S.INIT, 0),
    R(S.INIT, 0, OK, False, S.RISING, 1),
    R(S.INIT, 0, OK, False, S.UP, 0, "announce", rise=1),
    R(S.INIT, 0, SOFT, False, S.DOWN, 0),
    R(S.INIT, 0, HARD, False, S.DOWN, 0),
    *[R(S.INIT, 0, h, True, S.DRAINED, 0) for h in ANY_HEALTH],
    R(S.INIT, 0, OK, True, S.DRAINED, 0, graceful=30),
    # ---- RISING: OKs count toward rise; any failure goes DOWN (nothing to withdraw)
    R(S.RISING, 1, None, False, S.RISING, 1),
    R(S.RISING, 1, OK, False, S.RISING, 2),
    R(S.RISING, 2, OK, False, S.UP, 0, "announce"),
    R(S.RISING, 1, OK, False, S.UP, 0, "announce", rise=2),
    R(S.RISING, 5, OK, False, S.UP, 0, "announce"),  # rise lowered by a reload
    R(S.RISING, 2, SOFT, False, S.DOWN, 0),
    R(S.RISING, 2, HARD, False, S.DOWN, 0),
    *[R(S.RISING, 2, h, True, S.DRAINED, 0) for h in ANY_HEALTH],
    R(S.RISING, 2, OK, True, S.DRAINED, 0, graceful=30),
    # ---- UP: quiet while OK; soft failures count; hard failure withdraws at once
    R(S.UP, 0, None, False, S.UP, 0),
    R(S.UP, 0, OK, False, S.UP, 0),
    R(S.UP, 0, SOFT, False, S.FALLING, 1),
    R(S.UP, 0, SOFT, False, S.DOWN, 0, "withdraw", fall=1),
    R(S.UP, 0, HARD, False, S.DOWN, 0, "withdraw"),
    R(S.UP, 0, HARD, False, S.DOWN, 0, "withdraw", fall=100),
    *[R(S.UP, 0, h, True, S.DRAINED, 0, "withdraw") for h in ANY_HEALTH],
    R(S.UP, 0, None, True, S.DRAINING, 0, "announce-gshut", graceful=30),
    R(S.UP, 0, OK, True, S.DRAINING, 0, "announce-gshut", graceful=30),
    R(S.UP, 0, SOFT, True, S.DRAINING, 1, "announce-gshut", graceful=30),
    R(S.UP, 0, SOFT, True, S.DRAINED, 0, "withdraw", graceful=30, fall=1),
    R(S.UP, 0, HARD, True, S.DRAINED, 0, "withdraw", graceful=30),
    # ---- FALLING: still announced; OK recovers silently; fall failures withdraw
    R(S.FALLING, 1, None, False, S.FALLING, 1, fall=3),
    R(S.FALLING, 1, OK, False, S.UP, 0, fall=3),
    R(S.FALLING, 1, SOFT, False, S.FALLING, 2, fall=3),
    R(S.FALLING, 1, SOFT, False, S.DOWN, 0, "withdraw", fall=2),
    R(S.FALLING, 4, SOFT, False, S.DOWN, 0, "withdraw", fall=3),  # fall lowered by a reload
    R(S.FALLING, 1, HARD, False, S.DOWN, 0, "withdraw", fall=3),
    *[R(S.FALLING, 1, h, True, S.DRAINED, 0, "withdraw", fall=3) for h in ANY_HEALTH],
    R(S.FALLING, 1, None, True, S.DRAINING, 1, "announce-gshut", fall=3, graceful=30),
    R(S.FALLING, 1, OK, True, S.DRAINING, 0, "announce-gshut", fall=3, graceful=30),
    R(S.FALLING, 1, SOFT, True, S.DRAINING, 2, "announce-gshut", fall=3, graceful=30),
    R(S.FALLING, 1, SOFT, True, S.DRAINED, 0, "withdraw", fall=2, graceful=30),
    R(S.FALLING, 1, HARD, True, S.DRAINED, 0, "withdraw", fall=3, graceful=30),
    # ---- DOWN: like INIT, but already failed
    R(S.DOWN, 0, None, False, S.DOWN, 0),
    R(S.DOWN, 0, OK, False, S.RISING, 1),
    R(S.DOWN, 0, OK, False, S.UP, 0, "announce", rise=1),
    R(S.DOWN, 0, SOFT, False, S.DOWN, 0),
    R(S.DOWN, 0, HARD, False, S.DOWN, 0),
    *[R(S.DOWN, 0, h, True, S.DRAINED, 0) for h in ANY_HEALTH],
    R(S.DOWN, 0, OK, True, S.DRAINED, 0, graceful=30),
    # ---- DRAINING (graceful_until=130): hold until the deadline, unless the service fails
    R(S.DRAINING, 0, None, True, S.DRAINING, 0, graceful=30),
    R(S.DRAINING, 0, None, True, S.DRAINED, 0, "withdraw", graceful=30, now=UNTIL),
    R(S.DRAINING, 0, None, True, S.DRAINED, 0, "withdraw", graceful=30, now=500),
    R(S.DRAINING, 0, OK, True, S.DRAINING, 0, graceful=30),
    R(S.DRAINING, 1, OK, True, S.DRAINING, 0, graceful=30),
    R(S.DRAINING, 0, OK, True, S.DRAINED, 0, "withdraw", graceful=30, now=UNTIL),
    R(S.DRAINING, 0, SOFT, True, S.DRAINING, 1, graceful=30),
    R(S.DRAINING, 1, SOFT, True, S.DRAINED, 0, "withdraw", graceful=30),
    R(S.DRAINING, 0, HARD, True, S.DRAINED, 0, "withdraw", graceful=30),
    # undrained during the period: drop the community at once (still announced, still healthy)
    R(S.DRAINING, 0, None, False, S.UP, 0, "announce"),
    R(S.DRAINING, 0, None, False, S.UP, 0, "announce", now=500),  # undrain beats the deadline
    R(S.DRAINING, 1, None, False, S.FALLING, 1, "announce", fall=3),
    R(S.DRAINING, 0, OK, False, S.UP, 0, "announce"),
    R(S.DRAINING, 1, OK, False, S.UP, 0, "announce"),
    R(S.DRAINING, 0, SOFT, False, S.FALLING, 1, "announce"),
    R(S.DRAINING, 1, SOFT, False, S.DOWN, 0, "withdraw"),
    R(S.DRAINING, 0, HARD, False, S.DOWN, 0, "withdraw"),
    # ---- DRAINED: checks are ignored; undrain must earn `rise` again
    *[R(S.DRAINED, 0, h, True, S.DRAINED, 0) for h in ANY_HEALTH],
    R(S.DRAINED, 0, None, True, S.DRAINED, 0, graceful=30),
    R(S.DRAINED, 0, None, False, S.INIT, 0),
    R(S.DRAINED, 0, OK, False, S.RISING, 1),
    R(S.DRAINED, 0, OK, False, S.UP, 0, "announce", rise=1),
    R(S.DRAINED, 0, SOFT, False, S.DOWN, 0),
    R(S.DRAINED, 0, HARD, False, S.DOWN, 0),
    # ---- SUPPRESSED: healthy but damped, withdrawn; judged like UP; announced once the
    #      penalty decays below reuse (a tick or a result after LATER)
    R(S.SUPPRESSED, 0, None, False, S.SUPPRESSED, 0),
    R(S.SUPPRESSED, 0, OK, False, S.SUPPRESSED, 0),
    R(S.SUPPRESSED, 0, SOFT, False, S.SUPPRESSED, 1),
    R(S.SUPPRESSED, 1, SOFT, False, S.DOWN, 0),
    R(S.SUPPRESSED, 0, HARD, False, S.DOWN, 0, fall=100),
    *[R(S.SUPPRESSED, 0, h, True, S.DRAINED, 0) for h in ANY_HEALTH],
    R(S.SUPPRESSED, 0, None, True, S.DRAINED, 0, graceful=30),
    R(S.SUPPRESSED, 0, None, False, S.UP, 0, "announce", now=LATER),
    R(S.SUPPRESSED, 0, OK, False, S.UP, 0, "announce", now=LATER),
    R(S.SUPPRESSED, 0, SOFT, False, S.FALLING, 1, "announce", now=LATER),
    R(S.SUPPRESSED, 1, SOFT, False, S.DOWN, 0, now=LATER),
    # ---- a damped VIP that earns `rise` is suppressed instead of announced
    R(S.RISING, 2, OK, False, S.SUPPRESSED, 0, damped=True),
    R(S.DOWN, 0, OK, False, S.SUPPRESSED, 0, rise=1, damped=True),
    R(S.RISING, 2, OK, False, S.UP, 0, "announce", now=LATER, damped=True),
]

ROUTE_ACTIONS = {
    "-": [],
    "announce": [Announce(graceful_shutdown=False)],
    "announce-gshut": [Announce(graceful_shutdown=True)],
    "withdraw": [Withdraw()],
}


def damped(row: Row) -> bool:
    return row.damped or row.state is S.SUPPRESSED


def status_for(row: Row) -> VipStatus:
    until = UNTIL if row.state is S.DRAINING else None
    if damped(row):
        return VipStatus(
            row.state, row.streak, SINCE, until, penalty=3000.0, penalty_at=NOW, suppressed=True
        )
    return VipStatus(row.state, row.streak, SINCE, until)


@pytest.mark.parametrize("row", TABLE, ids=Row.id)
def test_transition_table(row: Row) -> None:
    old = status_for(row)
    new, actions = step(
        old,
        row.health,
        row.drained,
        row.now,
        row.rise,
        row.fall,
        row.graceful,
        damping=DAMPING if damped(row) else None,
    )

    assert (new.state, new.streak) == (row.new_state, row.new_streak)
    route_actions = [a for a in actions if not isinstance(a, Transition)]
    transitions = [a for a in actions if isinstance(a, Transition)]
    assert route_actions == ROUTE_ACTIONS[row.route]
    # The route action (if any) comes first: it is the one that must not wait.
    assert actions[: len(route_actions)] == route_actions
    if row.new_state is row.state:
        assert transitions == []
        assert new.since == SINCE
    else:
        assert [(t.old, t.new) for t in transitions] == [(row.state, row.new_state)]
        assert transitions[0].reason
        assert new.since == row.now
    if row.new_state is S.DRAINING:
        expected_until = UNTIL if row.state is S.DRAINING else row.now + row.graceful
        assert new.graceful_until == expected_until
    else:
        assert new.graceful_until is None


def test_table_covers_every_state_input_pair() -> None:
    covered = {(r.state, r.health, r.drained) for r in TABLE}
    every = set(itertools.product(VipState, ANY_HEALTH, (False, True)))
    assert every - covered == set()


def test_table_rows_are_distinct() -> None:
    ids = [r.id() for r in TABLE]
    assert len(ids) == len(set(ids))


def test_step_does_not_mutate_its_input() -> None:
    old = VipStatus(S.RISING, 1, SINCE)
    step(old, OK, False, NOW, 3, 2, 0)
    assert old == VipStatus(S.RISING, 1, SINCE)


@pytest.mark.parametrize(
    "rise, fall, graceful",
    [(0, 2, 0), (3, 0, 0), (3, 2, -1)],
    ids=["rise=0", "fall=0", "graceful<0"],
)
def test_step_rejects_bad_parameters(rise: int, fall: int, graceful: float) -> None:
    with pytest.raises(ValueError):
        step(VipStatus.initial(0), OK, False, NOW, rise, fall, graceful)


@pytest.mark.parametrize(
    "state, streak, until",
    [(S.UP, -1, None), (S.DRAINING, 0, None), (S.UP, 0, 10.0)],
    ids=["negative streak", "draining without deadline", "deadline outside draining"],
)
def test_status_rejects_inconsistent_fields(
    state: VipState, streak: int, until: float | None
) -> None:
    with pytest.raises(ValueError):
        VipStatus(state, streak, SINCE, until)


@pytest.mark.parametrize("state", list(VipState), ids=str)
def test_announced_and_graceful_flags(state: VipState) -> None:
    status = VipStatus(
        state, 0, SINCE, UNTIL if state is S.DRAINING else None, suppressed=state is S.SUPPRESSED
    )
    assert status.announced is (state in (S.UP, S.FALLING, S.DRAINING)) is is_announced(state)
    assert status.graceful is (state is S.DRAINING)


def test_initial_status_and_actions_fail_closed() -> None:
    status = VipStatus.initial(7.0)
    assert (status.state, status.streak, status.since, status.announced) == (S.INIT, 0, 7.0, False)
    assert initial_actions() == [Withdraw()]


def test_resync_reannounces_exactly_what_is_announced_in_order() -> None:
    statuses = {
        "192.0.2.1/32": VipStatus(S.UP, 0, SINCE),
        "192.0.2.2/32": VipStatus(S.DOWN, 0, SINCE),
        "2001:db8::1/128": VipStatus(S.DRAINING, 0, SINCE, UNTIL),
        "192.0.2.3/32": VipStatus(S.FALLING, 1, SINCE),
        "192.0.2.4/32": VipStatus(S.RISING, 2, SINCE),
        "192.0.2.5/32": VipStatus(S.DRAINED, 0, SINCE),
        "192.0.2.6/32": VipStatus(S.INIT, 0, SINCE),
    }
    assert resync(statuses) == [
        ("192.0.2.1/32", Announce(graceful_shutdown=False)),
        ("2001:db8::1/128", Announce(graceful_shutdown=True)),
        ("192.0.2.3/32", Announce(graceful_shutdown=False)),
    ]


@pytest.mark.parametrize(
    "results, mode, expected",
    [
        ([], "all", SOFT),
        ([], "any", SOFT),
        ([OK], "all", OK),
        ([OK, OK], "all", OK),
        ([OK, SOFT], "all", SOFT),
        ([SOFT, HARD, OK], "all", HARD),
        ([HARD], "all", HARD),
        ([OK], "any", OK),
        ([HARD, SOFT, OK], "any", OK),
        ([HARD, SOFT], "any", SOFT),
        ([SOFT, SOFT], "any", SOFT),
        ([HARD, HARD], "any", HARD),
    ],
    ids=lambda v: "+".join(h.value for h in v) or "none" if isinstance(v, list) else str(v),
)
def test_combine(results: list[Health], mode: Literal["all", "any"], expected: Health) -> None:
    assert combine(results, mode) is expected


def test_combine_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError):
        combine([OK], "most")  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties over random runs
@pytest.mark.parametrize("seed", range(40))
def test_random_runs_keep_the_route_invariants(seed: int) -> None:
    rng = random.Random(seed)
    rise, fall = rng.randint(1, 4), rng.randint(1, 4)
    graceful = rng.choice([0.0, 0.0, 2.5, 10.0])
    status, now, drained = VipStatus.initial(0.0), 0.0, False
    route: bool | None = None  # what ExaBGP has: None = withdrawn, else the gshut flag
    oks = fails = 0  # consecutive OK results counted while not drained / consecutive failures
    announces = 0

    for _ in range(2000):
        now += rng.choice([0.5, 1.0, 1.0, 3.0])
        if rng.random() < 0.04:
            drained = not drained
        health = rng.choices([None, OK, SOFT, HARD], weights=[2, 10, 3, 1])[0]
        if health is not None:
            oks = oks + 1 if health is OK and not drained else 0
            fails = fails + 1 if health is not OK else 0

        new, actions = step(status, health, drained, now, rise, fall, graceful)
        changed = new.state is not status.state
        for action in actions:
            if isinstance(action, Announce):
                assert changed, "announced without a state change (churn)"
                assert route != action.graceful_shutdown, "announced what ExaBGP already has"
                if route is None:
                    assert not action.graceful_shutdown, "gshut announce of a withdrawn VIP"
                    assert oks >= rise, "announced before earning `rise` OK results"
                route = action.graceful_shutdown
                announces += 1
            elif isinstance(action, Withdraw):
                assert changed, "withdrew without a state change"
                assert route is not None, "withdrew what is not announced"
                route = None
            else:
                assert (action.old, action.new) == (status.state, new.state)
        assert [isinstance(a, Transition) for a in actions].count(True) == int(changed)

        assert new.route == route, "status disagrees with what ExaBGP was told"
        if health is HARD:
            assert route is None, "still announced after a hard failure"
        if fails >= fall:
            assert route is None, "still announced after `fall` failures"
        if drained and route is not None:
            assert route is True and new.graceful_until is not None and now < new.graceful_until
        status = new

    assert announces > 0  # the run exercised announcing at all


def test_draining_ends_on_a_timer_tick_at_the_deadline() -> None:
    up = VipStatus(S.UP, 0, 0.0)
    draining, actions = step(up, None, True, 10.0, 3, 2, 5.0)
    assert actions[0] == Announce(graceful_shutdown=True)
    still, actions = step(draining, None, True, 14.9, 3, 2, 5.0)
    assert (still.state, actions) == (S.DRAINING, [])
    done, actions = step(still, None, True, 15.0, 3, 2, 5.0)
    assert done.state is S.DRAINED and actions[0] == Withdraw()


def test_ticks_do_not_count_toward_rise() -> None:
    status = VipStatus.initial(0.0)
    status, _ = step(status, OK, False, 1.0, 2, 2, 0)
    for t in range(2, 10):
        status, actions = step(status, None, False, float(t), 2, 2, 0)
        assert (status.state, status.streak, actions) == (S.RISING, 1, [])
    status, actions = step(status, OK, False, 10.0, 2, 2, 0)
    assert status.state is S.UP and actions[0] == Announce()
