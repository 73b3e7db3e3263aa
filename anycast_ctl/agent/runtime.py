"""The agent's asyncio runtime: checks -> state machine -> ExaBGP lines and loopback VIPs.

One loop drives everything. Each tick runs every check that a due VIP needs, each distinct
probe once however many VIPs and check names share it (anycast_ctl/agent/observe.py), then
steps each due VIP's state machine with the combined health. A dead HAProxy is an event, not
a poll: its stats socket's watcher steps the VIPs that depend on it at once; so is a listener
closing: the kernel's sock_diag broadcast runs the checks that connect to it at once.
Actions go to exactly two executors: the ExaBGP speaker and the loopback reconciler. All the
route changes of one step go out together, batched and pipelined (one write, few lines).

Fail closed, everywhere:
- at start, every configured VIP is withdrawn before anything is checked, so a restart never
  leaves a stale announcement;
- a crashed check task ends the agent with exit 1 after withdrawing everything;
- a corrupt drain file counts as "whole node drained";
- the agent dying or hanging is caught by the lifeline guardian, which stops ExaBGP so its
  sessions close (anycast_ctl/agent/lifeline.py; ExaBGP itself keeps the routes of a dead
  API process announced);
- a hung ExaBGP: the agent notices, the guardian kills it (exabgp_watch.py, failsafe.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anycast_ctl.agent import fsm
from anycast_ctl.agent.control import ControlServer, serve_control
from anycast_ctl.agent.drainstore import DrainState, load_or_drain_all, save_drain_state
from anycast_ctl.agent.established import EstablishedError, read_established
from anycast_ctl.agent.exabgp import PeerState, RouteWriter, Shutdown
from anycast_ctl.agent.failsafe import Failsafe
from anycast_ctl.agent.health import CheckResult
from anycast_ctl.agent.observe import CheckCrashed, Observer
from anycast_ctl.agent.scheduling import CheckScheduling
from anycast_ctl.agent.speaker import Speaker
from anycast_ctl.agent.status import (
    connections_view,
    exabgp_status,
    status_payload,
)
from anycast_ctl.agent.stepping import Stepping
from anycast_ctl.chance.connections import count_by_vip
from anycast_ctl.config.node import NodeConfig
from anycast_ctl.errors import UserError

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are on
    from anycast_ctl.agent.metrics import AgentMetrics

log = logging.getLogger("anycast_ctl.agent")
audit = logging.getLogger("anycast_ctl.audit")

__all__ = ["AgentRuntime", "CheckCrashed"]


# Stepping first: the stubs the scheduling mixins declare for its methods must not shadow them.
class AgentRuntime(Stepping, CheckScheduling):
    def __init__(
        self,
        config: NodeConfig,
        config_path: Path,
        speaker: Speaker,
        loopback=None,  # anycast_ctl.agent.netlink.LoopbackAddresses, or None when not managed
        metrics: AgentMetrics | None = None,
        clock: Callable[[], float] = time.time,
        lifeline=None,  # anycast_ctl.agent.lifeline.Lifeline, or None when not under ExaBGP
        notifier=None,  # anycast_ctl.agent.sdnotify.Notifier, or None outside systemd
    ):
        self.config_path = config_path
        self.speaker = speaker
        self.loopback = loopback
        self.metrics = metrics
        self.clock = clock
        self.failsafe = Failsafe(speaker, config.lifeline, lifeline, notifier)
        self.results: dict[str, CheckResult] = {}
        self.result_since: dict[str, float] = {}
        self.statuses: dict[str, fsm.VipStatus] = {}
        self.next_due: dict[str, float] = {}
        self.stopping = asyncio.Event()
        # False until the set-up that must precede any announce is done (_services).
        self.announcing = False
        self.exit_code = 0
        self._control: ControlServer | None = None
        self._background: set[asyncio.Task] = set()  # held so the loop cannot drop them mid-run
        self._closed_pending: set[str] = set()  # scheduling.py: the listener watch's checks
        self._closed_runner: asyncio.Task | None = None
        self._handover = self._quiet_timer = self._quiet_tick_on = None  # quiet_ticks.py
        self._apply(config)
        self.first_rise = set(self.vips)  # scheduling.py: paced fast until it ends
        self.drains = self._load_drains()
        self.chance = None  # anycast_ctl.chance.agent.ChanceAgent when second_chance is on
        if config.second_chance.enabled:
            from anycast_ctl.chance.agent import ChanceAgent

            self.chance = ChanceAgent(config)
            if metrics is not None:
                metrics.watch_chance(self.chance.metrics_view, self.chance.read_counters)

    # ------------------------------------------------------------------ config
    def _apply(self, config: NodeConfig) -> None:
        now = self.clock()
        self.config = config
        self.vips = {vip.address: vip for vip in config.vips}
        self.writer = RouteWriter(config)
        self.damping = config.damping.rule()
        self.observer = Observer(config)
        self.checks = self.observer.checks
        self._plan_checks(config)
        initial = fsm.VipStatus.initial(now)
        for address in self.vips:
            # One shared (immutable) object: VIPs that step alike keep sharing it (_step_all).
            self.statuses.setdefault(address, initial)
            self.next_due.setdefault(address, now)

    def _load_drains(self) -> DrainState:
        state, problem = load_or_drain_all(self.config.drain.state_file, self.clock())
        if problem is not None:
            log.error("%s; treating the whole node as drained until it is fixed", problem)
        return state

    async def reload(self) -> bool:
        """SIGHUP: take the new config if it is valid; else keep the running one and say why."""
        from anycast_ctl.agent.preflight import check_node_config

        try:
            new = check_node_config(self.config_path)  # the same validation as at start
        except UserError as exc:
            for line in exc.lines():
                log.error("reload refused, keeping the running config: %s", line)
            return False
        removed = [a for a in self.vips if a not in {v.address for v in new.vips}]
        await self._send_all(
            self.writer.withdraw_many([a for a in removed if self.statuses[a].announced])
        )
        for address in removed:
            del self.statuses[address], self.next_due[address]
        old_vips, old_observer = self.vips, self.observer
        self._apply(new)
        was_watching = old_observer.watching
        old_observer.close()
        if was_watching:
            self._watch()
        # Attributes changed (MED, communities...): announce the new ones once.
        changed = [
            (address, self.statuses[address].graceful)
            for address, vip in self.vips.items()
            if address in old_vips and old_vips[address] != vip and self.statuses[address].announced
        ]
        await self._send_all(self.writer.announce_each(changed))
        await self._reconcile_loopback()
        log.info(
            "reloaded %s: %d VIPs (%d removed)", self.config_path, len(self.vips), len(removed)
        )
        return True

    # ------------------------------------------------------------------ main
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig, handler in (
            (signal.SIGTERM, self.stopping.set),
            (signal.SIGINT, self.stopping.set),
            (signal.SIGHUP, lambda: self._spawn(self.reload())),
        ):
            loop.add_signal_handler(sig, handler)
        tasks: list[asyncio.Task[Any]] = []
        try:
            # The reader must run before the first command: every send waits for its ack.
            self.speaker.on_event = self._on_event
            # The guards start before start-up too: a slow first ack must not look like a hang.
            tasks = [asyncio.create_task(self.speaker.run_reader(), name="exabgp-reader")]
            tasks += self.failsafe.tasks()
            await self._startup()
            self._watch()
            # The checks start now: the set-up left (the second chance's table, the control
            # socket, metrics) runs beside the first rise, which announces only once the
            # table is in (see _step_all).
            tasks += [
                asyncio.create_task(self._check_loop(), name="checks"),
                asyncio.create_task(self.stopping.wait(), name="stop"),
            ]
            await self._services()
            if self.chance is not None:
                tasks += self.chance.tasks()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.get_name() == "exabgp-reader":
                    log.warning(
                        "ExaBGP closed our input: it is gone, and its sessions with it; exiting"
                    )
                elif (code := self.failsafe.finished(task)) is not None:
                    self.exit_code = code
                elif task.exception() is not None:
                    log.critical(
                        "check loop crashed: %r; withdrawing everything and exiting 1",
                        task.exception(),
                        exc_info=task.exception(),
                    )
                    self.exit_code = 1
        finally:
            # Keep reading ExaBGP while withdrawing: the withdraws wait for their acks.
            self.observer.stop()
            if self._closed_runner is not None:
                self._closed_runner.cancel()  # no step may race the withdraws below
            for task in tasks[1:]:
                task.cancel()
            await self._shutdown()
            if tasks:
                tasks[0].cancel()
            self.failsafe.exit(self.exit_code)
        return self.exit_code

    async def _startup(self) -> None:
        """Before any check: fail closed, and the VIPs' addresses as the checks need them."""
        # Clear anything stale, in a few lines however many VIPs there are.
        await self._send_all(self.writer.withdraw_many(list(self.vips)))
        await self._reconcile_loopback()

    async def _services(self) -> None:
        """The rest of the set-up, while the first checks run."""
        if self.chance is not None:
            # Before the first announce: conntrack must see every handshake of this node.
            await self.chance.start()
        self.announcing = True
        self._control = await serve_control(
            self.config.control.socket,
            self.config.control.allow_uids,
            self.config.control.allow_groups,
            self.handle_control,
            known_vips=lambda: set(self.vips),
        )
        if self.metrics and self.config.metrics.enabled:
            self.metrics.serve(self.config.metrics.listen_host, self.config.metrics.listen_port)
        for address, status in self.statuses.items():
            self._publish(address, status)
        log.info(
            "agent for node %s started: %d VIPs, %d checks",
            self.config.node,
            len(self.vips),
            len(self.checks),
        )

    async def _shutdown(self) -> None:
        if self._control is not None:
            self._control.close()
        if self.speaker.alive:
            announced = [a for a, s in self.statuses.items() if s.announced]
            await self._send_all(self.writer.withdraw_many(announced))
        if self.loopback is not None and self.config.loopback.manage:
            await self.loopback.reconcile_async(set())  # removes exactly the addresses we added
        if self.chance is not None:
            await self.chance.stop()
        log.info("agent stopped: everything withdrawn, VIP addresses removed")

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ ExaBGP events
    async def _resync(self) -> None:
        announce = fsm.resync(self.statuses)
        await self._send_all(
            self.writer.announce_each([(a, x.graceful_shutdown) for a, x in announce])
        )

    def _on_event(self, event) -> None:
        if isinstance(event, PeerState):
            log.info("BGP peer %s is %s", event.address, "up" if event.up else "down")
            if event.up:
                self._spawn(self._resync())
        elif isinstance(event, Shutdown):
            log.info("ExaBGP is shutting down")
            self.stopping.set()

    # ------------------------------------------------------------------ control socket
    async def handle_control(self, request, peer) -> dict:
        if request.op == "status":
            return await self.reply(request.connections)
        targets = list(request.vips) or list(self.vips)  # the server already refused unknown VIPs
        now = self.clock()
        if request.op == "drain":
            if self.chance is not None and request.whole_node:
                await self.chance.leave()
            self.drains = self.drains.drain(
                request.vips or None, by=peer.user, uid=peer.uid, reason=request.reason, now=now
            )
        else:
            self.drains = self.drains.undrain(request.vips or None)
        if self.chance is not None:
            self.chance.drained(all(self.drains.is_drained(a) is not None for a in self.vips))
        save_drain_state(self.config.drain.state_file, self.drains)
        await self._step_all([(self.vips[address], None) for address in targets])
        return await self.reply(request.connections)

    async def reply(self, connections: bool) -> dict:
        """The status, plus the connections still open to our VIPs counted now if asked."""
        payload = self.status()
        if not connections:
            return payload
        try:
            text = await read_established(self.vips)
        except EstablishedError as exc:
            return {**payload, **connections_view(None, str(exc))}
        return {**payload, **connections_view(count_by_vip(text, self.vips))}

    def status(self) -> dict:
        speaker = self.speaker
        exabgp = exabgp_status(
            speaker.alive, speaker.since_last_line(), speaker.peers, self.clock()
        )
        payload = status_payload(
            self.config,
            self.statuses,
            self.results,
            self.result_since,
            self.drains,
            exabgp,
            now=self.clock(),
            damping=self.damping,
        )
        payload["second_chance"] = (
            self.chance.status() if self.chance is not None else {"enabled": False}
        )
        return payload
