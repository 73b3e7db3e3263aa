"""Second chance in the agent (I/O shell): heartbeats, the table's lifetime, its updates.

    chance = ChanceAgent(config)
    await chance.start()        # the table, before the first announce (conntrack must see SYNs)
    tasks += chance.tasks()     # heartbeats out and in; the table follows every change
    await chance.routes_change(True)   # before the announce (or withdraw) lines are written
    await chance.stop()         # "gone" to the peers, table and devices removed

Decisions are pure (chance/peers.py, chance/planner.py, chance/likely.py); applying goes
through chance/apply.py in a thread, one apply at a time. A failure to apply is logged and
shown in status; it never withdraws a VIP (forwarding helps moved connections, it is not
what makes a VIP healthy).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from anycast_ctl.chance import apply as chance_io
from anycast_ctl.chance.metrics_view import ChanceView
from anycast_ctl.chance.nft_counters import ChanceCounters
from anycast_ctl.chance.peers import PeerTable, decode, encode
from anycast_ctl.chance.planner import announced_set, plan, serving
from anycast_ctl.config.node import NodeConfig
from anycast_ctl.read_size import read_in_small_chunks
from anycast_ctl.render.chance import ChancePlan

if TYPE_CHECKING:  # numpy and the topology: loaded in the background (start)
    from anycast_ctl.chance.likely import Likely

log = logging.getLogger("anycast_ctl.agent.chance")
HISTORY = 4  # announced sets remembered: connections older than a few changes are rare
COUNTERS_EVERY = 1.0
COUNTERS_TIMEOUT = 2.0  # one metrics scrape's nft read; Prometheus' default timeout is 10 s
# How long an announce waits for this node's own table to follow (it gains flows at once).
# An apply is one nft transaction, tens of ms; a failing one must not hold a VIP back long.
ANNOUNCE_WAIT = 1.0
# How long the table must have been left alone before the next change's owners are computed
# ahead (_warm, 60-120 ms of numpy a change on 2 cores). A change is when the CPU is wanted
# elsewhere: the withdrawing node's ExaBGP sends its withdrawals and the routers move, within
# about 0.25 s for 1,000 VIPs; measured 2026-12-02, warming right after a kill took 120-250 ms
# of each agent's CPU in that time. Not longer: a change that comes before the warming is
# done computes its owners itself, and its table follows that much later.
WARM_AFTER = 0.5


class _Beats(asyncio.DatagramProtocol):
    def __init__(self, owner: ChanceAgent) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner.received(data, addr[0])


class ChanceAgent:
    def __init__(self, config: NodeConfig, netns: str | None = None) -> None:
        self.cfg = config.second_chance
        self.node = config.node
        self.netns = netns
        beat = self.cfg.heartbeat
        self.peers = PeerTable({p.name: p.underlay for p in self.cfg.peers}, beat.dead_after)
        self.own_live = False
        self.leaving = False  # a whole-node drain under way: say "drained" before withdrawing
        self.gone = False  # past the drain timeout, or stopping: forward nothing, hold nothing
        self.drain_deadline: float | None = None
        self.history: list[frozenset[str]] = []
        self.likely: Likely | None = None  # once the topology is read
        self.applied: ChancePlan | None = None
        self._devices_as: ChancePlan | None = None  # the last plan applied whole: its devices
        self.loaded = False
        self.error: str | None = None
        self.counters: dict[str, int] = {}
        self.table_generation = 0  # tables applied since start (metrics: each update shows)
        self.table_updated_at: float | None = None  # monotonic time of the last apply
        self._transport: asyncio.DatagramTransport | None = None
        self._changed = asyncio.Event()
        self._generation = 0  # bumped on each change the table must follow
        self._caught_up = asyncio.Event()  # the table has followed every change so far
        self._pending_since: float | None = None  # the first change not yet followed
        self._lock = asyncio.Lock()
        self._states: dict[str, str] = {}
        self._likely_task: asyncio.Task[None] | None = None  # held: the loop keeps weak refs

    # ------------------------------------------------------------ lifetime
    async def start(self) -> None:
        for reason in self.cfg.unpredictable:
            log.warning("second chance: %s; forwarding along the fallback chain", reason)
        # The first table needs no prediction (no peer is known yet, so it targets none), and
        # the prediction costs numpy and the whole topology: loaded after it, off the loop, so
        # the node's first announce does not wait for it. Until then the ring alone decides.
        await self._update()
        if self.cfg.topology is not None:
            self._likely_task = asyncio.create_task(self._predict(), name="chance-likely")
        try:
            loop = asyncio.get_running_loop()
            assert self.cfg.underlay is not None  # validated when enabled
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Beats(self), local_addr=(self.cfg.underlay, self.cfg.heartbeat.port)
            )
            read_in_small_chunks(self._transport)  # heartbeats: small datagrams, often
        except OSError as exc:
            self.error = f"heartbeats on {self.cfg.underlay}:{self.cfg.heartbeat.port}: {exc}"
            log.error("second chance: %s; no peer is ever live, nothing is forwarded", self.error)

    async def _predict(self) -> None:
        try:
            self.likely = await asyncio.to_thread(self._load_likely)
        except Exception as exc:  # a topology we cannot read: the ring alone, said loudly
            log.error("second chance: cannot predict owners from %s: %s", self.cfg.topology, exc)
            return
        self._change()  # the table follows the prediction from now on

    def _load_likely(self) -> Likely:
        from anycast_ctl.chance.likely import Likely
        from anycast_ctl.config.topology import load_topology

        assert self.cfg.topology is not None
        return Likely(load_topology(self.cfg.topology))

    def tasks(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._beat_loop(), name="chance-beats"),
            asyncio.create_task(self._update_loop(), name="chance-updates"),
        ]

    async def stop(self) -> None:
        self.gone = True
        if self._likely_task is not None:
            self._likely_task.cancel()
        self._send()  # peers stop forwarding to us at once, not after dead_after
        if self._transport is not None:
            self._transport.close()
        async with self._lock:
            try:
                await asyncio.to_thread(chance_io.remove, self.netns)
                log.info("second chance: table and overlay removed")
            except chance_io.ChanceError as exc:
                log.error("second chance: removing the table failed: %s", exc)
            self.loaded, self.applied, self._devices_as = False, None, None

    # ------------------------------------------------------------ inputs
    def _change(self) -> None:
        if self._caught_up.is_set() or self._pending_since is None:
            self._pending_since = time.monotonic()
        self._generation += 1
        self._caught_up.clear()
        self._changed.set()

    def set_live(self, live: bool) -> None:
        if live != self.own_live:
            self.own_live = live
            self._send()  # at once: the peers' tables follow before the routers do
            self._change()

    async def routes_change(self, live: bool) -> None:
        """Called before this node's announce or withdraw lines are written, with whether it
        announces anything after them. The peers hear at once (one datagram each): the
        routers move flows tens of ms after the lines, and a peer's table must already send
        the flows it gains to their owners. Withdrawing is never delayed further. Announcing,
        this node gains flows itself: its own table follows first, for at most ANNOUNCE_WAIT."""
        was = self.own_live
        self.set_live(live)
        if live and not was:
            try:
                await asyncio.wait_for(self._caught_up.wait(), ANNOUNCE_WAIT)
            except TimeoutError:
                log.warning(
                    "second chance: table not updated within %gs; announcing anyway", ANNOUNCE_WAIT
                )

    async def leave(self) -> None:
        """A whole-node drain: tell the peers first and give them time to update their tables,
        so the collateral flows they gain go to their owners from the routers' first move."""
        self.leaving = True
        self._send()
        self._change()
        await asyncio.sleep(self.cfg.heartbeat.dead_after)

    def drained(self, whole_node: bool) -> None:
        """A whole-node drain starts the drain timeout; an undrain cancels it."""
        if whole_node:
            self.drain_deadline = time.monotonic() + self.cfg.drain_timeout
        else:
            self.drain_deadline = None
            self.leaving = False
            if self.gone:
                self.gone = False
                self._change()

    def received(self, data: bytes, source: str) -> None:
        hb = self.cfg.heartbeat
        beat = decode(data, hb.key, time.time(), hb.max_skew)
        if beat is not None and self.peers.hear(beat, source, time.monotonic()):
            self._check_states()

    # ------------------------------------------------------------ loops
    def _state(self) -> str:
        if self.gone or not self.loaded:
            return "gone"
        return "live" if self.own_live and not self.leaving else "drained"

    def _send(self) -> None:
        if self._transport is None:
            return
        data = encode(self.node, self._state(), time.time(), self.cfg.heartbeat.key)
        for peer in self.cfg.peers:
            self._transport.sendto(data, (peer.underlay, self.cfg.heartbeat.port))

    def _check_states(self) -> None:
        states = self.peers.states(time.monotonic())
        if states != self._states:
            self._states = states
            self._change()

    async def _beat_loop(self) -> None:
        next_counters = 0.0
        while True:
            self._send()
            self._check_states()
            now = time.monotonic()
            if self.drain_deadline is not None and now >= self.drain_deadline and not self.gone:
                log.warning(
                    "second chance: drained for %gs (the drain timeout): forwarding state removed,"
                    " this node's remaining connections are left to end",
                    self.cfg.drain_timeout,
                )
                self.gone = True
                self._change()
            if self.loaded and now >= next_counters:
                next_counters = now + COUNTERS_EVERY
                try:
                    self.counters = await asyncio.to_thread(chance_io.counters, self.netns)
                except chance_io.ChanceError as exc:
                    log.error("second chance: reading counters: %s", exc)
            await asyncio.sleep(self.cfg.heartbeat.interval)

    async def _update_loop(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            generation = self._generation
            await self._update()
            if generation == self._generation:
                self._caught_up.set()
                if await self._quiet_for(WARM_AFTER):
                    await self._warm()

    async def _quiet_for(self, seconds: float) -> bool:
        """Whether no change came within `seconds` (one that comes ends the wait at once)."""
        try:
            await asyncio.wait_for(self._changed.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _warm(self) -> None:
        """Ahead of the next change: its likely owners, one candidate change per thread call,
        given up as soon as a real change is waiting (it must not wait behind this)."""
        if self.likely is None or not self.history or self.gone:
            return
        from anycast_ctl.chance.likely import next_sets  # loaded with the prediction

        now = self.history[-1]
        for after in next_sets(now, [self.node, *(p.name for p in self.cfg.peers)]):
            if self._changed.is_set():
                return
            await asyncio.to_thread(self.likely.candidates, now, after, self.node)

    async def _update(self) -> None:
        async with self._lock:
            if self.gone:
                if self.loaded:
                    await asyncio.to_thread(chance_io.remove, self.netns)
                    self.loaded, self.applied, self._devices_as = False, None, None
                return
            states = self._states
            now = announced_set(self.node, self.own_live and not self.leaving, states)
            if not self.history or self.history[-1] != now:
                self.history = [*self.history, now][-HISTORY:]
            likely: tuple[str, ...] = ()
            if self.likely is not None:
                likely = await asyncio.to_thread(
                    self.likely.owners,
                    tuple(self.history),
                    self.node,
                    self.cfg.hop_limit,
                    serving(states),
                )
            wanted = plan(self.cfg, self.node, states, likely)
            if wanted == self.applied:
                return
            computed = time.monotonic()
            try:
                await asyncio.to_thread(
                    chance_io.apply_plan, wanted, self.netns, previous=self._devices_as
                )
            except chance_io.ChanceError as exc:
                self._devices_as = None  # left half-made, maybe: the next apply redoes them
                self.error = str(exc)
                log.error("second chance: applying the table failed: %s", exc)
                return
            self.table_generation += 1
            self.table_updated_at = time.monotonic()
            first = not self.loaded
            self.applied, self.loaded, self.error = wanted, True, None
            self._devices_as = wanted
            since = self._pending_since
            done = time.monotonic()
            log.info(
                "second chance: table %s; targets %s, fallback %s (%s; apply %.0f ms)",
                "loaded" if first else "updated",
                ",".join(p.name for p in wanted.peers) or "none",
                ",".join(wanted.chain) or "none",
                "first" if since is None else f"{(done - since) * 1000:.0f} ms after the change",
                (done - computed) * 1000,
            )

    # ------------------------------------------------------------ status
    def status(self) -> dict[str, object]:
        return {
            "enabled": True,
            "table_loaded": self.loaded,
            "state": self._state(),
            "peers": dict(self._states) or {p.name: "down" for p in self.cfg.peers},
            "fallback": list(self.applied.chain) if self.applied else [],
            "forwarded": self.counters.get("forwarded", 0),
            "arrived": self.counters.get("arrived", 0),
            "predicted": self.likely is not None,
            "error": self.error,
            "drain_deadline_in_s": None
            if self.drain_deadline is None
            else round(max(0.0, self.drain_deadline - time.monotonic()), 1),
        }

    def metrics_view(self) -> ChanceView:
        """What the metrics show besides the counters (read from the metrics thread)."""
        updated = self.table_updated_at
        return ChanceView(
            peers=dict(self._states) or {p.name: "down" for p in self.cfg.peers},
            loaded=self.loaded,
            forwarding=self.loaded and self._state() != "gone",
            generation=self.table_generation,
            age=None if updated is None else max(0.0, time.monotonic() - updated),
        )

    def read_counters(self) -> ChanceCounters:
        """One `nft` run; ChanceError if it fails (the metrics count that, they never guess)."""
        return chance_io.read_counters(self.netns, timeout=COUNTERS_TIMEOUT)
