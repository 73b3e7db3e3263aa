"""The agent's guards against hangs, and what it tells systemd: one object for the runtime.

- the lifeline guardian (lifeline.py): heartbeats from the event loop, at the ExaBGP watch's
  looks; tightened after the
  first decision for every VIP; told when ExaBGP hangs;
- the ExaBGP watch (exabgp_watch.py): probes ExaBGP and reports it hung;
- systemd (sdnotify.py): READY=1 after the first decisions, WATCHDOG=1 from the check loop,
  STOPPING=1 on the way out.

Every part is optional (None): the agent run by hand, or in tests, has no guardian and no
systemd.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Mapping

from anycast_ctl.agent.exabgp_watch import PROBE_EVERY, ExabgpWatch
from anycast_ctl.agent.fsm import VipStatus
from anycast_ctl.config.node import Lifeline as LifelineSettings

log = logging.getLogger("anycast_ctl.agent")
# Seconds between heartbeats; the guardian's stall limits are several beats. The beats ride on
# the ExaBGP watch's looks, which come at least this often.
LIFELINE_BEAT = PROBE_EVERY


class Failsafe:
    def __init__(
        self,
        speaker,
        settings: LifelineSettings,
        lifeline=None,  # anycast_ctl.agent.lifeline.Lifeline
        notifier=None,  # anycast_ctl.agent.sdnotify.Notifier
    ) -> None:
        self.speaker = speaker
        self.lifeline = lifeline
        self.notifier = notifier
        self.watch = ExabgpWatch(
            speaker,
            limit=settings.exabgp_answer_within,
            startup_limit=settings.startup_exabgp_answer_within,
            # The heartbeat rides on the watch's wake-up (at least every PROBE_EVERY, which
            # is LIFELINE_BEAT): one wake-up of the loop, not two timers.
            on_look=lifeline.beat if lifeline is not None else None,
        )
        self.ready = False
        self.decided: set[str] = set()  # VIPs that have had a decision from a check result

    def tasks(self) -> list[asyncio.Task]:
        """Start before the agent's own start-up, so a slow first ack is timed (loosely)."""
        tasks = [asyncio.create_task(self.watch.run(), name="exabgp-watch")]
        if self.lifeline is not None:
            # Beats come from the watch (on_look); this task ends when the guardian dies.
            tasks.append(asyncio.create_task(self.lifeline.guardian_exit(), name="lifeline"))
        return tasks

    def finished(self, task: asyncio.Task) -> int | None:
        """One of our tasks ended: the exit code it calls for (None: not ours)."""
        if task.get_name() == "lifeline":
            log.critical("the lifeline guardian died: nothing would fail us closed; exiting 1")
            return 1
        if task.get_name() == "exabgp-watch" and task.exception() is None:
            self.exabgp_hung(task.result())
            return 1
        return None

    def exabgp_hung(self, reason: str) -> None:
        """ExaBGP stopped answering: have it killed (its sessions close)."""
        log.critical("%s: it is hung; stopping it so its BGP sessions close", reason)
        if self.lifeline is not None:
            self.lifeline.exabgp_hung()
        else:
            log.critical("no lifeline guardian to stop ExaBGP: its routes stay until hold time")
        self.speaker.give_up()  # nothing more to write: withdraws would wait for nothing

    def first_decisions_made(self, announced: int, total: int) -> None:
        """Every VIP has a decision: start-up is over, and from now on a stall is a hang."""
        self.ready = True
        # Start-up's objects (agent run disabled collection while importing) stay for good:
        # freeze them out of every later collection, then collect as usual.
        gc.freeze()
        gc.enable()
        if self.lifeline is not None:
            self.lifeline.tighten()
        self.watch.tighten()
        if self.notifier is not None:
            self.notifier.ready(f"{announced} of {total} VIPs announced")
        log.info("first decision made for every VIP: tight stall limits from now on")

    def loop_tick(self, statuses: Mapping[str, VipStatus]) -> float | None:
        """Called once per check-loop pass: the first time every VIP has a decision, start-up
        is over; and systemd's watchdog is fed. Returns the longest the loop may sleep to
        keep feeding it (None: no limit)."""
        if not self.ready and self.decided >= set(statuses):
            self.first_decisions_made(sum(s.announced for s in statuses.values()), len(statuses))
        if self.notifier is None:
            return None
        self.notifier.watchdog()
        return self.notifier.interval

    def look(self) -> None:
        """A check tick: the ExaBGP watch looks now (and the heartbeat rides on it)."""
        self.watch.look()

    def expect_look_at(self, when: float) -> None:
        """The check loop's next tick is at loop time `when`: the watch waits for it."""
        self.watch.expect_look_at(when)

    def exit(self, code: int) -> None:
        if self.notifier is not None:
            self.notifier.stopping()
        if self.lifeline is not None:
            if code == 0:
                self.lifeline.stand_down()  # withdrawn on purpose: ExaBGP may stay
            else:
                self.lifeline.close()  # a failure: the guardian stops ExaBGP, systemd restarts
