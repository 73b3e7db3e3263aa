"""The per-VIP state machine: health results and the drain flag in, route actions out.

Pure: no I/O and no clock (`now` is passed in), so every transition is a table row in
tests/unit/test_fsm.py. docs/state-machine.md is the operators' view of the same rules.

One step runs two rules in a fixed order:
  1. the drain rule (drain, undrain, end of the graceful-shutdown period), then
  2. the health rule (rise/fall counting; a hard failure withdraws at once).
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


_ANNOUNCED = frozenset({VipState.UP, VipState.FALLING, VipState.DRAINING})


def is_announced(state: VipState) -> bool:
    """True when a VIP in this state is announced to ExaBGP (DRAINING included)."""
    return state in _ANNOUNCED


@dataclass(frozen=True)
class VipStatus:
    state: VipState
    # Progress toward the pending change: OK results in RISING (toward rise), failures in
    # FALLING and DRAINING (toward fall). 0 in every other state.
    streak: int
    since: float  # `now` of the last state change
    graceful_until: float | None = None  # set exactly while DRAINING: when to withdraw

    def __post_init__(self) -> None:
        if self.streak < 0:
            raise ValueError(f"streak must be >= 0, not {self.streak}")
        if (self.graceful_until is not None) != (self.state is VipState.DRAINING):
            raise ValueError("graceful_until is set exactly when the state is DRAINING")

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
) -> tuple[VipStatus, list[Action]]:
    """Advance one VIP by one input.

    health: the combined result of a finished check round, or None for a timer tick
    (undrain or drain request, or the end of the graceful-shutdown period).
    Actions: at most one Announce or Withdraw, first (the route matters most), then a
    Transition if the state changed.
    """
    if rise < 1 or fall < 1:
        raise ValueError(f"rise and fall must be >= 1, not rise={rise} fall={fall}")
    if graceful_seconds < 0:
        raise ValueError(f"graceful_seconds must be >= 0, not {graceful_seconds}")

    after_drain, drain_reason = _drain_rule(status, drained, now, graceful_seconds)
    new, health_reason = _health_rule(after_drain, health, rise, fall)
    if new.state is not status.state:
        new = replace(new, since=now)
    else:
        new = replace(new, since=status.since)

    actions: list[Action] = _route_actions(status.route, new.route)
    if new.state is not status.state:
        reason = "; ".join(r for r in (drain_reason, health_reason) if r)
        actions.append(Transition(status.state, new.state, reason))
    return new, actions


def _to(state: VipState, streak: int = 0, graceful_until: float | None = None) -> VipStatus:
    # `since` is fixed up by step(), which knows whether the state changed.
    return VipStatus(state, streak, 0.0, graceful_until)


def _drain_rule(
    status: VipStatus, drained: bool, now: float, graceful_seconds: float
) -> tuple[VipStatus, str | None]:
    state = status.state
    if drained:
        if state in (VipState.INIT, VipState.RISING, VipState.DOWN):
            return _to(VipState.DRAINED), "drained (was not announced)"
        if state in (VipState.UP, VipState.FALLING):
            if graceful_seconds > 0:
                # Keep the fall streak: a failing service must not gain time by being drained.
                return (
                    _to(VipState.DRAINING, status.streak, now + graceful_seconds),
                    f"drained: graceful shutdown for {graceful_seconds:g}s",
                )
            return _to(VipState.DRAINED), "drained"
        if state is VipState.DRAINING:
            assert status.graceful_until is not None
            if now >= status.graceful_until:
                return _to(VipState.DRAINED), "graceful shutdown period over"
        return status, None
    if state is VipState.DRAINED:
        # Must earn `rise` OK results again before announcing.
        return _to(VipState.INIT), "undrained"
    if state is VipState.DRAINING:
        # Still announced and passing checks: drop the community at once, keep the fall streak.
        back = VipState.FALLING if status.streak else VipState.UP
        return _to(back, status.streak), "undrained during graceful shutdown"
    return status, None


def _health_rule(
    status: VipStatus, health: Health | None, rise: int, fall: int
) -> tuple[VipStatus, str | None]:
    state = status.state
    if health is None or state is VipState.DRAINED:
        return status, None

    if state in (VipState.INIT, VipState.DOWN, VipState.RISING):
        if health is not Health.OK:
            return _to(VipState.DOWN), f"{health.value} failure"
        count = status.streak + 1 if state is VipState.RISING else 1
        if count >= rise:
            return _to(VipState.UP), f"{count} OK result(s) (rise {rise})"
        return _to(VipState.RISING, count), f"OK {count}/{rise}"

    # Announced: UP, FALLING, DRAINING.
    down = VipState.DRAINED if state is VipState.DRAINING else VipState.DOWN
    if health is Health.HARD_FAIL:
        return _to(down), "hard failure: withdraw at once"
    if health is Health.OK:
        if state is VipState.DRAINING:
            return replace(status, streak=0), None
        return _to(VipState.UP), ("recovered" if state is VipState.FALLING else None)
    count = status.streak + 1
    if count >= fall:
        return _to(down), f"{count} soft failure(s) (fall {fall})"
    if state is VipState.DRAINING:
        return replace(status, streak=count), None
    return _to(VipState.FALLING, count), f"soft failure {count}/{fall}"


def _route_actions(before: bool | None, after: bool | None) -> list[Action]:
    """Announce/Withdraw from what ExaBGP had to what it should have (None = withdrawn)."""
    if before == after:
        return []
    if after is None:
        return [Withdraw()]
    # Unannounced -> announced, or the graceful-shutdown community added/removed: a new
    # announcement replaces the old attributes, no withdraw in between.
    return [Announce(graceful_shutdown=after)]


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
