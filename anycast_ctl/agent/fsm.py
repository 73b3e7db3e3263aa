"""The per-VIP state machine: health results and the drain flag in, route actions out.

Pure: no I/O and no clock (`now` is passed in), so every transition is a table row in
tests/unit/test_fsm.py. docs/state-machine.md is the operators' view of the same rules.

One step runs three rules in a fixed order:
  1. the drain rule (drain, undrain, end of the graceful-shutdown period), then
  2. the health rule (rise counting; soft failures counted over a window, `fall` of the last
     `window` results; a hard failure withdraws at once), then
  3. the damping rule (agent/damping.py): a withdrawal caused by a failure adds a penalty;
     above the suppress threshold a VIP that earns `rise` waits in SUPPRESSED, withdrawn,
     until the penalty decays below reuse. Damping never delays a withdrawal.
Announce/Withdraw are not chosen by the rules: they are derived from the difference between
what was announced before and after the step (`VipStatus.route`). So a route action happens
only on a state change that changes the route, and the agent can never announce twice in a
row or withdraw what is not announced (no UPDATE churn).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal, TypeAlias

from anycast_ctl.agent.damping import Damping
from anycast_ctl.agent.health import Health


class VipState(StrEnum):
    INIT = "init"  # just started or just undrained: nothing announced, no result counted yet
    RISING = "rising"  # OK results counting toward `rise`; not announced yet
    UP = "up"  # announced
    FALLING = "falling"  # still announced; soft failures counting toward `fall`
    DOWN = "down"  # withdrawn because the service failed
    DRAINING = (
        "draining"  # drained by an operator: announced with GRACEFUL_SHUTDOWN until a deadline
    )
    DRAINED = "drained"  # drained by an operator: withdrawn
    SUPPRESSED = "suppressed"  # healthy, but flapped too often: withdrawn until the penalty decays


_ANNOUNCED = frozenset({VipState.UP, VipState.FALLING, VipState.DRAINING})
# Healthy enough to be (or to have been) announced: failures here are flaps and are counted
# over the window. SUPPRESSED is withdrawn but judged like UP, so it can wait out its penalty.
_SERVING = _ANNOUNCED | {VipState.SUPPRESSED}


def is_announced(state: VipState) -> bool:
    """True when a VIP in this state is announced to ExaBGP (DRAINING included)."""
    return state in _ANNOUNCED


@dataclass(frozen=True)
class VipStatus:
    state: VipState
    # Progress toward the pending change: OK results in RISING (toward rise), soft failures
    # counted toward fall in FALLING, DRAINING and SUPPRESSED. 0 in every other state.
    streak: int
    since: float  # `now` of the last state change
    graceful_until: float | None = None  # set exactly while DRAINING: when to withdraw
    # With a window: the last results in the serving states, True for a soft failure.
    recent: tuple[bool, ...] = ()
    penalty: float = 0.0  # the damping penalty as it stood at `penalty_at`
    penalty_at: float = 0.0
    suppressed: bool = False  # damped: held withdrawn until the penalty decays below reuse

    def __post_init__(self) -> None:
        if self.streak < 0:
            raise ValueError(f"streak must be >= 0, not {self.streak}")
        if (self.graceful_until is not None) != (self.state is VipState.DRAINING):
            raise ValueError("graceful_until is set exactly when the state is DRAINING")
        if self.penalty < 0:
            raise ValueError(f"penalty must be >= 0, not {self.penalty}")
        if self.state is VipState.SUPPRESSED and not self.suppressed:
            raise ValueError("a SUPPRESSED VIP is suppressed")

    @classmethod
    def initial(cls, now: float) -> VipStatus:
        """The start state of every VIP: INIT, nothing announced (see initial_actions)."""
        return cls(VipState.INIT, 0, now)

    @property
    def announced(self) -> bool:
        """What we last told ExaBGP: is the VIP announced?"""
        return is_announced(self.state)

    @property
    def graceful(self) -> bool:
        """Announced with the GRACEFUL_SHUTDOWN community (65535:0, RFC 8326)?"""
        return self.state is VipState.DRAINING

    @property
    def route(self) -> bool | None:
        """The route as ExaBGP has it: None = withdrawn, else the graceful-shutdown flag."""
        return self.graceful if self.announced else None

    def penalty_now(self, damping: Damping | None, now: float) -> float:
        return damping.decayed(self.penalty, self.penalty_at, now) if damping else 0.0

    def reuse_at(self, damping: Damping | None) -> float | None:
        """While suppressed: when the penalty will be below reuse (the VIP may be announced
        then, if it is still healthy). None when not suppressed."""
        if not self.suppressed or damping is None:
            return None
        return damping.reuse_at(self.penalty, self.penalty_at)


@dataclass(frozen=True)
class Announce:
    graceful_shutdown: bool = False  # add the GRACEFUL_SHUTDOWN community (65535:0)


@dataclass(frozen=True)
class Withdraw:
    pass


@dataclass(frozen=True)
class Transition:
    """A state change, for the audit log and metrics."""

    old: VipState
    new: VipState
    reason: str
    reuse_at: float | None = None  # set when the VIP is suppressed: earliest re-announce


Action: TypeAlias = Announce | Withdraw | Transition


def initial_actions() -> list[Action]:
    """What the runtime sends for every VIP at start-up, before any check: fail closed.

    A previous agent may have died with the VIP announced (ExaBGP may keep the route if
    it outlived us); INIT means "not announced", so make that true.
    """
    return [Withdraw()]


def step(
    status: VipStatus,
    health: Health | None,
    drained: bool,
    now: float,
    rise: int,
    fall: int,
    graceful_seconds: float,
    *,
    window: int | None = None,
    damping: Damping | None = None,
) -> tuple[VipStatus, list[Action]]:
    """Advance one VIP by one input.

    health: the combined result of a finished check round, or None for a timer tick
    (undrain or drain request, the end of the graceful-shutdown period, the end of a
    suppression).
    window: soft failures withdraw when `fall` of the last `window` results failed; None
    means `fall` in a row (an OK result forgives every earlier failure).
    damping: None turns damping off.
    Actions: at most one Announce or Withdraw, first (the route matters most), then a
    Transition if the state changed.
    """
    if rise < 1 or fall < 1:
        raise ValueError(f"rise and fall must be >= 1, not rise={rise} fall={fall}")
    if window is not None and window < fall:
        raise ValueError(f"window ({window}) must be >= fall ({fall})")
    if graceful_seconds < 0:
        raise ValueError(f"graceful_seconds must be >= 0, not {graceful_seconds}")
    if _unchanged(status, health, drained):
        return status, []
    return by_the_rules(
        status, health, drained, now, rise, fall, graceful_seconds, window=window, damping=damping
    )


def by_the_rules(
    status: VipStatus,
    health: Health | None,
    drained: bool,
    now: float,
    rise: int,
    fall: int,
    graceful_seconds: float,
    *,
    window: int | None = None,
    damping: Damping | None = None,
) -> tuple[VipStatus, list[Action]]:
    """`step` without its validation and its steady-state shortcut: the three rules."""
    after_drain, drain_reason = _drain_rule(status, drained, now, graceful_seconds)
    after_health, health_reason, flap = _health_rule(after_drain, health, rise, fall, window)
    new, damping_reason = _damping_rule(status, after_health, flap, now, damping)
    new = replace(new, since=now if new.state is not status.state else status.since)

    actions: list[Action] = _route_actions(status.route, new.route)
    if new.state is not status.state:
        reason = "; ".join(r for r in (drain_reason, health_reason, damping_reason) if r)
        reuse = new.reuse_at(damping) if new.state is VipState.SUPPRESSED else None
        actions.append(Transition(status.state, new.state, reason, reuse))
    return new, actions


def _unchanged(status: VipStatus, health: Health | None, drained: bool) -> bool:
    """The steady state, every tick of a healthy VIP: UP, nothing counted, an OK result.
    The rules would return an equal status: the same state, no streak, no `recent` (an UP
    VIP with no failure in its window keeps none) and the same `since`; with damping, the
    same penalty re-based to `now` (`penalty` at `penalty_at` decays along the same curve,
    so it is left as it is)."""
    return (
        health is Health.OK
        and not drained
        and status.state is VipState.UP
        and not (status.streak or status.suppressed or status.recent)
    )


def _to(
    status: VipStatus,
    state: VipState,
    streak: int = 0,
    graceful_until: float | None = None,
    recent: tuple[bool, ...] = (),
) -> VipStatus:
    # `since` is fixed up by step(), which knows whether the state changed; the damping
    # fields travel unchanged until the damping rule.
    return replace(status, state=state, streak=streak, graceful_until=graceful_until, recent=recent)


def _drain_rule(
    status: VipStatus, drained: bool, now: float, graceful_seconds: float
) -> tuple[VipStatus, str | None]:
    state = status.state
    if drained:
        if state in (VipState.INIT, VipState.RISING, VipState.DOWN, VipState.SUPPRESSED):
            return _to(status, VipState.DRAINED), "drained (was not announced)"
        if state in (VipState.UP, VipState.FALLING):
            if graceful_seconds > 0:
                # Keep the failure count: a failing service must not gain time by being drained.
                return (
                    _to(
                        status,
                        VipState.DRAINING,
                        status.streak,
                        now + graceful_seconds,
                        status.recent,
                    ),
                    f"drained: graceful shutdown for {graceful_seconds:g}s",
                )
            return _to(status, VipState.DRAINED), "drained"
        if state is VipState.DRAINING:
            assert status.graceful_until is not None
            if now >= status.graceful_until:
                return _to(status, VipState.DRAINED), "graceful shutdown period over"
        return status, None
    if state is VipState.DRAINED:
        # Must earn `rise` OK results again before announcing.
        return _to(status, VipState.INIT), "undrained"
    if state is VipState.DRAINING:
        # Still announced and passing checks: drop the community at once, keep the count.
        back = VipState.FALLING if status.streak else VipState.UP
        return _to(status, back, status.streak, None, status.recent), (
            "undrained during graceful shutdown"
        )
    return status, None


def _health_rule(
    status: VipStatus, health: Health | None, rise: int, fall: int, window: int | None
) -> tuple[VipStatus, str | None, bool]:
    """(new status, reason, flap): flap is True when a serving VIP failed and goes down."""
    state = status.state
    if health is None or state is VipState.DRAINED:
        return status, None, False

    if state in (VipState.INIT, VipState.DOWN, VipState.RISING):
        if health is not Health.OK:
            return _to(status, VipState.DOWN), f"{health.value} failure", False
        count = status.streak + 1 if state is VipState.RISING else 1
        if count >= rise:
            return _to(status, VipState.UP), f"{count} OK result(s) (rise {rise})", False
        return _to(status, VipState.RISING, count), f"OK {count}/{rise}", False

    # Serving: UP, FALLING, DRAINING, SUPPRESSED.
    down = VipState.DRAINED if state is VipState.DRAINING else VipState.DOWN
    if health is Health.HARD_FAIL:
        return _to(status, down), "hard failure: withdraw at once", True
    soft = health is not Health.OK
    if window is None:
        recent: tuple[bool, ...] = ()
        failures = status.streak + 1 if soft else 0
        counted, of = f"{failures}/{fall}", f"{failures} soft failure(s) (fall {fall})"
    else:
        # A status counted without a window (before a reload) carries only its streak.
        before = status.recent or (True,) * status.streak
        recent = (*before, soft)[-window:]
        failures = sum(recent)
        counted = f"{failures}/{fall} of the last {len(recent)}"
        of = f"{failures} soft failure(s) in the last {len(recent)} results (fall {fall})"
    if failures >= fall:
        return _to(status, down), of, True
    if state in (VipState.DRAINING, VipState.SUPPRESSED):
        return replace(status, streak=failures, recent=recent), None, False
    if failures:
        reason = None if state is VipState.FALLING else f"soft failure {counted}"
        return _to(status, VipState.FALLING, failures, None, recent), reason, False
    return _to(status, VipState.UP), ("recovered" if state is VipState.FALLING else None), False


def _damping_rule(
    before: VipStatus, status: VipStatus, flap: bool, now: float, damping: Damping | None
) -> tuple[VipStatus, str | None]:
    """Penalties and suppression. `before` is the status the step started from."""
    if damping is None:
        if status.state is VipState.SUPPRESSED:  # damping turned off by a reload
            back = VipState.FALLING if status.streak else VipState.UP
            return replace(status, state=back, suppressed=False), "damping is off"
        return replace(status, suppressed=False), None
    penalty = damping.decayed(status.penalty, status.penalty_at, now)
    suppressed, reason = status.suppressed, None
    if flap:
        penalty = damping.add_flap(penalty)
        if penalty > damping.suppress and not suppressed:
            suppressed = True
            reason = f"flap penalty {penalty:.0f} is above suppress {damping.suppress:g}"
    elif suppressed and penalty < damping.reuse:
        suppressed = False
    state = status.state
    if suppressed and state in (VipState.UP, VipState.FALLING) and not before.announced:
        wait = damping.reuse_at(penalty, now) - now
        state, reason = (
            VipState.SUPPRESSED,
            (
                f"suppressed: flap penalty {penalty:.0f}, above reuse {damping.reuse:g} for "
                f"{wait:.1f}s more; announced then if still healthy"
            ),
        )
    elif state is VipState.SUPPRESSED and not suppressed:
        state = VipState.FALLING if status.streak else VipState.UP
        reason = f"flap penalty {penalty:.0f} is below reuse {damping.reuse:g}: suppression over"
    new = replace(status, state=state, penalty=penalty, penalty_at=now, suppressed=suppressed)
    return new, reason


def _route_actions(before: bool | None, after: bool | None) -> list[Action]:
    """Announce/Withdraw from what ExaBGP had to what it should have (None = withdrawn)."""
    if before == after:
        return []
    if after is None:
        return [Withdraw()]
    # Unannounced -> announced, or the graceful-shutdown community added/removed: a new
    # announcement replaces the old attributes, no withdraw in between.
    return [Announce(graceful_shutdown=after)]


def timer_due(status: VipStatus, damping: Damping | None) -> float | None:
    """When a timer tick (health None) must step this VIP: the end of its graceful-shutdown
    period, or of its suppression. None: no timer."""
    if status.graceful_until is not None:
        return status.graceful_until
    return status.reuse_at(damping) if status.state is VipState.SUPPRESSED else None


def resync(statuses: Mapping[str, VipStatus]) -> list[tuple[str, Announce]]:
    """Re-announce everything announced, after ExaBGP restarts or a BGP session comes back."""
    return [
        (vip, Announce(graceful_shutdown=status.graceful))
        for vip, status in statuses.items()
        if status.announced
    ]


def combine(results: Sequence[Health], mode: Literal["all", "any"]) -> Health:
    """Merge a VIP's check results into one.

    all: HARD if any is HARD, else SOFT if any is SOFT, else OK.
    any: OK if any is OK, HARD if all are HARD, else SOFT.
    No results: SOFT_FAIL (health not shown is not health; fail closed, through `fall`).
    """
    if mode not in ("all", "any"):
        raise ValueError(f"combine mode must be 'all' or 'any', not {mode!r}")
    if not results:
        return Health.SOFT_FAIL
    if mode == "all":
        if Health.HARD_FAIL in results:
            return Health.HARD_FAIL
        return Health.SOFT_FAIL if Health.SOFT_FAIL in results else Health.OK
    if Health.OK in results:
        return Health.OK
    if all(r is Health.HARD_FAIL for r in results):
        return Health.HARD_FAIL
    return Health.SOFT_FAIL
