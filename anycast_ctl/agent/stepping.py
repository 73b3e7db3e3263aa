"""The agent's steps: each VIP's state machine fed, and the route changes sent at once.

A mixin of `AgentRuntime` (anycast_ctl/agent/runtime.py), split out to keep both small.
`fsm.step` is pure; `_decide` runs it for many VIPs (VIPs of one kind holding one status
share one step), `_step_all` commits and sends, `_step_quietly` commits a step that has
nothing to send (quiet_ticks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from anycast_ctl.agent import fsm
from anycast_ctl.agent.health import Health
from anycast_ctl.agent.status import damping_view, transition_line
from anycast_ctl.agent.vips import desired_for
from anycast_ctl.config.node import LoopbackMode, NodeConfig, Vip

log = logging.getLogger("anycast_ctl.agent")
audit = logging.getLogger("anycast_ctl.audit")


class Stepping:
    # Set by AgentRuntime.
    config: NodeConfig
    statuses: dict[str, fsm.VipStatus]
    drains: Any  # agent.drainstore.DrainState
    damping: Any  # agent.damping.Damping | None
    failsafe: Any  # agent.failsafe.Failsafe
    announcing: bool
    chance: Any  # chance.agent.ChanceAgent | None
    writer: Any  # agent.exabgp.RouteWriter
    speaker: Any  # agent.speaker.Speaker
    loopback: Any  # agent.netlink loopback manager | None
    metrics: Any
    vips: dict[str, Vip]
    clock: Callable[[], float]
    _kind: dict[str, int]
    _kind_timing: list[tuple[int, int, int | None]]

    async def _step_all(self, updates: Sequence[tuple[Vip, Health | None]]) -> None:
        """Step each VIP's state machine, then send all their route changes at once.

        `fsm.step` is pure: VIPs of one kind (_plan_checks) holding the same status object
        with the same health and drain share one step and its result object, so they keep
        sharing it: a thousand VIPs of one service cost one step a tick, not a thousand.
        """
        announce: list[tuple[str, bool]] = []
        withdraw: list[str] = []
        transitions: list[tuple[str, fsm.Transition]] = []
        for vip, health, new, actions in self._decide(updates):
            if not self.announcing and any(isinstance(a, fsm.Announce) for a in actions):
                # Set-up is not done: the VIP stays where it was (rising), and its next good
                # result, a fast-paced check away, announces it. Never a late announce that
                # a concurrent step could overtake: nothing is committed here.
                continue
            self.statuses[vip.address] = new
            if health is not None:
                self.failsafe.decided.add(vip.address)
            for action in actions:
                if isinstance(action, fsm.Transition):
                    transitions.append((vip.address, action))
                elif isinstance(action, fsm.Announce):
                    announce.append((vip.address, action.graceful_shutdown))
                elif isinstance(action, fsm.Withdraw):
                    withdraw.append(vip.address)
        if announce:
            await self._reconcile_loopback()  # the address must be there before traffic arrives
        if self.chance is not None and (announce or withdraw):
            # Before the lines: the peers' forwarding tables must lead the routers' move.
            await self.chance.routes_change(any(s.announced for s in self.statuses.values()))
        await self._send_all(
            self.writer.withdraw_many(withdraw) + self.writer.announce_each(announce)
        )
        # Logged after the lines are out: a thousand audit lines must not delay a withdraw.
        for address, change in transitions:
            audit.info("%s", transition_line(address, change))
            if self.metrics:
                self.metrics.transition(address, change.old, change.new)
        if withdraw:
            await self._reconcile_loopback()
        if self.metrics:
            for vip, _ in updates:
                self._publish(vip.address, self.statuses[vip.address])

    def _decide(
        self, updates: Sequence[tuple[Vip, Health | None]]
    ) -> list[tuple[Vip, Health | None, fsm.VipStatus, list[fsm.Action]]]:
        """Each VIP's step, nothing committed: (vip, health, new status, actions)."""
        now = self.clock()
        # key -> (the old status, kept alive so its id() stays unique; the step's result)
        steps: dict[tuple, tuple[fsm.VipStatus, tuple[fsm.VipStatus, list]]] = {}
        decided = []
        for vip, health in updates:
            drained = self.drains.is_drained(vip.address) is not None
            old = self.statuses[vip.address]
            kind = self._kind[vip.address]
            key = (id(old), health, drained, kind)
            memo = steps.get(key)
            if memo is None:
                rise, fall, window = self._kind_timing[kind]
                memo = steps[key] = (
                    old,
                    fsm.step(
                        old,
                        health,
                        drained,
                        now,
                        rise=rise,
                        fall=fall,
                        graceful_seconds=self.config.drain.graceful_shutdown_seconds,
                        window=window,
                        damping=self.damping,
                    ),
                )
            new, actions = memo[1]
            decided.append((vip, health, new, actions))
        return decided

    def _step_quietly(self, updates: Sequence[tuple[Vip, Health | None]]) -> bool:
        """`_step_all` when no VIP has anything to do (no route change, no transition):
        committed, and True. Else nothing is committed: False, for `_step_all`."""
        decided = self._decide(updates)
        if any(actions for *_, actions in decided):
            return False
        for vip, health, new, _ in decided:
            self.statuses[vip.address] = new
            if health is not None:
                self.failsafe.decided.add(vip.address)
        if self.metrics:
            for vip, _, new, _ in decided:
                self._publish(vip.address, new)
        return True

    async def _send_all(self, lines: list[str]) -> None:
        for line, ok in zip(lines, await self.speaker.send_many(lines), strict=True):
            if not ok:
                log.error("ExaBGP did not accept: %.300s", line)

    def _publish(self, address: str, status: fsm.VipStatus) -> None:
        if self.metrics:
            drained = self.drains.is_drained(address) is not None
            damping = damping_view(status, self.damping, self.clock())
            self.metrics.set_vip(address, status.state, status.announced, drained, damping)

    async def _reconcile_loopback(self) -> None:
        if self.loopback is None or not self.config.loopback.manage:
            return
        lo = self.config.loopback
        announced = {a for a, s in self.statuses.items() if s.announced}
        owned = (
            self.loopback.owned()
            if lo.mode is LoopbackMode.WHILE_UP and not lo.remove_on_withdraw
            else ()
        )
        desired = desired_for(announced, set(self.vips), lo.mode, lo.remove_on_withdraw, owned)
        for result in await self.loopback.reconcile_async(desired):
            if not result.ok:
                log.error("loopback %s: %s", result.action, result.detail)
