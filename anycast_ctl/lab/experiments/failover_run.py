"""One failover run on a lab, measured (scenarios.py acts, this module times; failover.py runs
every scenario for every implementation).

One run, under steady client load (lab/experiments/steady.py) and with long-lived connections
held open (lab/experiments/longlived.py):
  1. the lab is converged; probe flows are sent and land where the simulator says; the
     long-lived connections open;
  2. the event (time T0); every adjacent router's FIB is watched (lab/observe/fibset.py) until
     none uses the node: withdraw time = the last router's moment - T0 (then the rest of the
     event, if it has one: a drained router goes);
  3. the same probe flows again: which moved, against the simulator's prediction for the
     node leaving (the kernel's next-hop order before, minus the node); the long-lived
     connections get Settings.long_lived_stall to notice a break, then the ones broken are
     counted against the prediction from the kernel's next-hop order before and after;
  4. the recovery act (T1); withdraw's mirror: until every adjacent router uses it again;
  5. failed steady-load connections, and withdrawals of other (healthy) nodes, over the run;
  6. restore anything still broken, so the next run starts from a converged lab.

    runner = Runner(lab, Settings(runs=1))            # failover_settings.py
    with FibSet(lab) as fibs:
        m = runner.run(dep, Scenario.DRAIN, "lb1", 0, fibs)   # a failover_report.Measurement
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments import chance_driver
from anycast_ctl.lab.experiments.failover_report import Measurement
from anycast_ctl.lab.experiments.failover_settings import Settings
from anycast_ctl.lab.experiments.forwarding import forwarder, forwarding_prediction
from anycast_ctl.lab.experiments.longlived import (
    BrokenCounts,
    HeldConnection,
    LongLived,
    broken_counts,
)
from anycast_ctl.lab.experiments.scenario_names import QUIET_SCENARIOS, ROUTER_SCENARIOS, Scenario
from anycast_ctl.lab.experiments.scenarios import (
    Deployment,
    Event,
    finish,
    flaky_event,
    recover,
    restore,
    trigger,
)
from anycast_ctl.lab.experiments.steady import Connection, SteadyLoad, ports_needed
from anycast_ctl.lab.experiments.traffic import (
    Flow,
    FlowResult,
    Orders,
    kernel_orders,
    plan_flows,
    run_flows,
)
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.observe.fibset import FibSet
from anycast_ctl.sim.predict import predict_held

Say = Callable[[str], None]
# The long-lived connections' window: since, until, the kernel's next-hop orders at each end.
Window = tuple[float, float, Orders, Orders]
# Where the probe flows landed before the event, and the next-hop orders they were sent under.
Probed = tuple[Orders, list[FlowResult]]


def moved_flows(
    topo: Topology,
    flows: list[Flow],
    before: list[FlowResult],
    after: list[FlowResult],
    orders: Orders,
    lb: str,
) -> tuple[int, int, int]:
    """(observed moved, predicted moved, size of the symmetric difference), over the flows
    that succeeded both times. The prediction: the kernel's order before, without `lb`."""
    tuples = [f.five_tuple for f in flows]
    pred_before = predict_held(topo, tuples, orders)
    without_lb = {
        vip: {r: [n for n in order if n != lb] for r, order in routers.items()}
        for vip, routers in orders.items()
    }
    pred_after = predict_held(topo, tuples, without_lb)
    both = [i for i in range(len(flows)) if before[i].ok and after[i].ok]
    observed = {i for i in both if before[i].lb != after[i].lb}
    predicted = {i for i in both if pred_before[i] != pred_after[i]}
    return len(observed), len(predicted), len(observed ^ predicted)


@dataclass
class Observed:
    """What one run saw, filled in step by step (None: not measured in this run)."""

    start: float  # monotonic: the load flowing, just before the event
    ll_before: Orders  # the kernel's next-hop orders then
    event: Event | None = None
    window: Window | None = None  # the long-lived connections' window
    withdraw: float | None = None
    withdraw_bound: float | None = None
    per_router: dict[str, float | None] = field(default_factory=dict)
    recovered: float | None = None
    recover_bound: float | None = None
    moved: tuple[int | None, int | None, int | None] = (None, None, None)
    withdrawals: int | None = None  # of the healthy nodes, in a flaky run
    broken: BrokenCounts | None = None
    spurious: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note_details(self, event: Event) -> None:
        self.notes += [f"{k}={v}" for k, v in event.detail.items()]

    def measurement(
        self, impl: str, scenario: Scenario, run: int, node: str, connections: list[Connection]
    ) -> Measurement:
        """The run's figures; `connections`: the steady load's, those opened in the run."""
        counts = self.broken
        return Measurement(
            implementation=impl,
            scenario=scenario.value,
            run=run,
            node=node,
            withdraw_s=self.withdraw,
            withdraw_bound_s=self.withdraw_bound,
            recover_s=self.recovered,
            recover_bound_s=self.recover_bound,
            connections=len(connections),
            failed=sum(not c.ok for c in connections),
            moved=self.moved[0],
            predicted_moved=self.moved[1],
            moved_mismatch=self.moved[2],
            spurious=len(self.spurious),
            long_lived=counts.open if counts else None,
            long_lived_broken=counts.broken if counts else None,
            long_lived_broken_collateral=counts.collateral if counts else None,
            long_lived_predicted_broken=counts.predicted if counts else None,
            withdrawals=self.withdrawals,
            per_router=self.per_router,
            note="; ".join(self.notes),
        )


class Runner:
    """Runs on one lab, one after another: each gets fresh source ports and its own run id."""

    def __init__(self, lab: LabHandle, settings: Settings, say: Say | None = None):
        self.lab, self.settings = lab, settings
        self.say = say or (lambda _msg: None)
        self.flows = plan_flows(lab.topology, settings.probe_flows, first_port=20000)
        self._port = 30000
        self._ll_port = 10000
        self._serial = 0
        self._hold_time = float(lab.topology.bgp.hold_time)

    def _next_long_lived_ports(self) -> int:
        """Fresh source ports for every run: the previous run's closed connections are in
        TIME_WAIT, and a connect() from the same address and port to the VIP would fail."""
        clients = max(1, len(self.lab.topology.clients))
        need = -(-self.settings.long_lived // clients) // 8 + 2
        if self._ll_port + need > 19999:
            self._ll_port = 10000
        first, self._ll_port = self._ll_port, self._ll_port + need
        return first

    def _hold(self, run_id: str) -> LongLived | None:
        s = self.settings
        if s.long_lived <= 0:
            return None
        return LongLived(
            self.lab,
            count=s.long_lived,
            first_port=self._next_long_lived_ports(),
            run_id=run_id,
            interval=s.long_lived_interval,
            stall=s.long_lived_stall,
        ).start()

    def _next_ports(self, impl: str) -> int:
        need = ports_needed(
            self.settings.rate,
            self.settings.max_run_seconds(impl, self._hold_time),
            len(self.lab.topology.clients),
        )
        if self._port + need > 65000:
            self._port = 30000
        first, self._port = self._port, self._port + need + 1
        return first

    def _probe_before(self) -> Probed:
        """Where the probe flows land now, with the kernel's next-hop order they were sent
        under. Every one must succeed: a lab that drops connections before the event would make
        every figure of the run meaningless (one retry after re-converging, then LabError)."""
        for attempt in (1, 2):
            orders = kernel_orders(self.lab)
            results = run_flows(self.lab, self.flows, timeout=self.settings.connection_timeout)
            failed = [r for r in results if not r.ok]
            if not failed and kernel_orders(self.lab) == orders:
                return orders, results
            if attempt == 1:
                self.lab.wait_converged(30)
        raise LabError(
            f"before the event {len(failed)} of {len(results)} probe flows failed "
            f"(first: {failed[0].error if failed else 'next-hop order changed while probing'})"
        )

    def run(
        self, dep: Deployment, scenario: Scenario, lb: str, run: int, fibs: FibSet
    ) -> Measurement:
        """One run of `scenario` on node `lb` (steps 1 to 6 of the module's docstring)."""
        impl = dep.implementation.value
        self.lab.wait_converged(30)
        quiet = scenario in QUIET_SCENARIOS  # no withdrawal deserved: nothing moves
        probed: Probed = ({}, []) if quiet else self._probe_before()
        self._serial += 1
        run_id = f"{impl}-{scenario}-{self._serial}"
        who_forwards = forwarder(self.lab.topology, self.settings.second_chance, dep.implementation)
        held = self._open_long_lived(run_id)
        load = self._start_load(impl, run_id)
        try:
            seen = self._observe(dep, scenario, lb, fibs, load, held is not None, probed)
        finally:
            connections = load.stop()
            conns = held.stop() if held is not None else []
        end = time.monotonic()
        if held is not None:
            self._count_broken(seen, conns, lb, scenario, who_forwards)
        skip = frozenset({lb}) if scenario in ROUTER_SCENARIOS else frozenset()
        seen.spurious = fibs.departures(seen.start, end, self._healthy(lb, quiet), skip)
        if seen.spurious:
            seen.notes.append("left a FIB: " + ",".join(seen.spurious))
        in_window = [c for c in connections if c.start >= seen.start - 1]
        if scenario is not Scenario.STEADY:
            self._restore(dep, lb, seen)
        return seen.measurement(impl, scenario, run, lb, in_window)

    def _open_long_lived(self, run_id: str) -> LongLived | None:
        """The lab's second-chance tables as the settings say, then the long-lived connections
        (None: none held). The tables come first: conntrack sees the connections open."""
        forwarding = self.settings.second_chance is True
        if forwarding:
            chance_driver.load(self.lab)
        elif self.settings.second_chance is False:
            chance_driver.unload(self.lab)
        held = self._hold(run_id)
        if forwarding and held is not None:
            chance_driver.load_owners(self.lab)
        return held

    def _start_load(self, impl: str, run_id: str) -> SteadyLoad:
        s = self.settings
        return SteadyLoad(
            self.lab,
            rate=s.rate,
            max_seconds=s.max_run_seconds(impl, self._hold_time),
            timeout=s.connection_timeout,
            first_port=self._next_ports(impl),
            run_id=run_id,
        ).start()

    def _observe(
        self,
        dep: Deployment,
        scenario: Scenario,
        lb: str,
        fibs: FibSet,
        load: SteadyLoad,
        holding: bool,
        probed: Probed,
    ) -> Observed:
        """The run under load: a steady period, a flaky period, or an event timed out of
        every FIB and back."""
        s = self.settings
        load.wait_flowing(max(3, int(s.rate / 2)))
        seen = Observed(start=time.monotonic(), ll_before=kernel_orders(self.lab))
        if scenario is Scenario.STEADY:
            load.wait_flowing(int(s.rate * s.steady_seconds), timeout=s.steady_seconds * 3 + 10)
            seen.window = (seen.start, time.monotonic(), seen.ll_before, kernel_orders(self.lab))
        elif scenario is Scenario.FLAKY:
            self._flaky_period(dep, lb, fibs, seen)
        else:
            self._timed_event(dep, scenario, lb, fibs, holding, probed, seen)
            load.wait_flowing(max(3, int(s.rate / 4)), timeout=10)
        return seen

    def _timed_event(
        self,
        dep: Deployment,
        scenario: Scenario,
        lb: str,
        fibs: FibSet,
        holding: bool,
        probed: Probed,
        seen: Observed,
    ) -> None:
        """The event, timed until no router uses `lb`; what moved; the recovery, timed until
        every router uses it again."""
        impl = dep.implementation.value
        event = seen.event = trigger(dep, scenario, lb)
        seen.withdraw_bound = self.settings.withdraw_bound_for(impl, scenario, self._hold_time)
        seen.withdraw, seen.per_router = fibs.time_all(
            lb, event.at, seen.withdraw_bound, back=False
        )
        if seen.withdraw is not None:
            finish(dep, event)
            self._after_withdrawal(event, lb, holding, probed, seen)
        else:
            seen.notes.append("still in some FIB at the bound")
        t1 = recover(dep, event)
        if seen.withdraw is not None and t1 is not None:
            seen.recover_bound = self.settings.recover_bound[impl]
            # When ExaBGP respawned the agent by itself the event was the recovery act: then
            # count from the moment the node was out of every FIB (the outage).
            since = max(t1, event.at + seen.withdraw)
            if since > t1:
                seen.notes.append("recover counted from the withdrawal")
            seen.recovered, _ = fibs.time_all(lb, since, seen.recover_bound, back=True)
        seen.note_details(event)

    def _after_withdrawal(
        self, event: Event, lb: str, holding: bool, probed: Probed, seen: Observed
    ) -> None:
        """Once `lb` is out of every FIB: the probe flows again (which moved, against the
        prediction), then the held connections get long enough to notice a break."""
        settled = time.monotonic()
        ll_after = kernel_orders(self.lab)
        orders, before = probed
        after = run_flows(self.lab, self.flows, timeout=self.settings.connection_timeout)
        seen.moved = moved_flows(self.lab.topology, self.flows, before, after, orders, lb)
        # Every held connection exchanges a line at least every interval: within the stall
        # bound of the settled moment, each one has seen its break.
        rest = settled + self.settings.long_lived_stall + 0.5 - time.monotonic()
        if holding and rest > 0:
            time.sleep(rest)
        seen.window = (event.at, time.monotonic(), seen.ll_before, ll_after)

    def _count_broken(
        self,
        seen: Observed,
        conns: list[HeldConnection],
        lb: str,
        scenario: Scenario,
        who_forwards: str | None,
    ) -> None:
        """The held connections broken in the run's window, against the prediction (nothing
        when the run has no window: the node never left every FIB)."""
        if seen.window is None:
            return
        since, until, before, after = seen.window
        seen.broken = broken_counts(
            self.lab.topology,
            conns,
            since,
            until,
            lb,
            before,
            after,
            forwarding=forwarding_prediction(who_forwards, scenario),
        )
        if who_forwards is not None:
            seen.notes.append(f"second chance on ({who_forwards}-driven)")
        if seen.broken.mismatch:
            seen.notes.append(f"long-lived broken unlike predicted: {seen.broken.mismatch}")

    def _restore(self, dep: Deployment, lb: str, seen: Observed) -> None:
        """Mend what the run left broken, so the next run starts from a converged lab."""
        event = seen.event
        respawned = event is not None and event.detail.get("after_kill") == "respawned"
        mended = restore(dep, lb, fresh_exabgp=respawned)
        if mended:
            seen.notes.append("restored: " + ", ".join(mended))

    def _healthy(self, lb: str, quiet: bool) -> set[str]:
        """The LB nodes that deserve no withdrawal: all but `lb`, or all in a quiet run."""
        every = {x.name for x in self.lab.topology.lbs if x.vips}
        return every if quiet else every - {lb}

    def _flaky_period(self, dep: Deployment, lb: str, fibs: FibSet, seen: Observed) -> None:
        """Make `lb`'s check late on some requests for `flaky_seconds`, then stop it; the
        period is the long-lived connections' window, and the healthy nodes' withdrawals in it
        are counted."""
        event = seen.event = flaky_event(dep, lb, self.settings.flaky_percent)
        # A fixed observation period, not a wait for a condition: nothing is expected to end.
        time.sleep(max(0.0, event.at + self.settings.flaky_seconds - time.monotonic()))
        until = recover(dep, event)
        assert until is not None
        seen.window = (event.at, until, seen.ll_before, kernel_orders(self.lab))
        seen.withdrawals = fibs.withdrawals(event.at, until, self._healthy(lb, True))
        seen.note_details(event)
