"""Run failover scenarios on a lab and measure them (scenarios.py acts, this module times).

One run, under steady client load (lab/experiments/steady.py) and with long-lived connections
held open (lab/experiments/longlived.py):
  1. the lab is converged; probe flows are sent and land where the simulator says; the
     long-lived connections open;
  2. the event (time T0); every adjacent router's FIB is watched (lab/observe/fibset.py) until
     none uses the node: withdraw time = the last router's moment - T0 (then the rest of the
     event, if it has one: a drained router goes);
  3. the same probe flows again: which moved, against the simulator's prediction for the
     node leaving (the kernel's next-hop order before, minus the node); the long-lived
     connections get LONG_LIVED_WINDOW to notice a break, then the ones broken are counted
     against the prediction from the kernel's next-hop order before and after;
  4. the recovery act (T1); withdraw's mirror: until every adjacent router uses it again;
  5. failed steady-load connections, and withdrawals of other (healthy) nodes, over the run;
  6. restore anything still broken, so the next run starts from a converged lab.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments import chance_driver
from anycast_ctl.lab.experiments.baseline import Implementation
from anycast_ctl.lab.experiments.failover_report import Measurement, long_lived_cell
from anycast_ctl.lab.experiments.forwarding import forwarder, forwarding_prediction
from anycast_ctl.lab.experiments.longlived import BrokenCounts, LongLived, broken_counts
from anycast_ctl.lab.experiments.router_acts import pick_router
from anycast_ctl.lab.experiments.scenario_names import (
    FLAKY_PERCENT,
    QUIET_SCENARIOS,
    ROUTER_SCENARIOS,
    Scenario,
)
from anycast_ctl.lab.experiments.scenarios import (
    Deployment,
    Event,
    deploy,
    finish,
    flaky_event,
    recover,
    restore,
    trigger,
)
from anycast_ctl.lab.experiments.steady import SteadyLoad, ports_needed
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


@dataclass
class Settings:
    runs: int = 5
    rate: float = 40.0  # steady-load connections per second (all clients together)
    connection_timeout: float = 2.0
    probe_flows: int = 120  # flows re-sent after the withdrawal to see which moved
    steady_seconds: float = 5.0  # the no-event observation period
    flaky_seconds: float = 20.0  # how long the flaky scenario's check answers late
    flaky_percent: int = FLAKY_PERCENT  # of its requests answered late meanwhile
    # exabgp-hang: wait out the routers' hold timer for an implementation that has no watch
    # (False: its usual bound, reported as a miss; the quick bench saves those seconds)
    await_hold_timer: bool = True
    long_lived: int = 200  # connections held open through each run (0: none)
    # Second chance driven by the lab (chance_driver.py): True loads the lab's tables, False
    # removes every table before each run, None leaves them to the deployment (the agent).
    second_chance: bool | None = None
    long_lived_interval: float = 0.05  # each one exchanges a line this often
    # An echo later than this: the connection is broken. Above three retransmissions
    # (0.2 + 0.4 + 0.8 s at TCP's minimum RTO), so a lossy second is not a break.
    long_lived_stall: float = 3.0
    withdraw_bound: dict[str, float] = field(
        default_factory=lambda: {"anycast": 3.0, "exabgp-fast": 3.0, "exabgp-default": 12.0}
    )
    recover_bound: dict[str, float] = field(
        default_factory=lambda: {"anycast": 15.0, "exabgp-fast": 15.0, "exabgp-default": 30.0}
    )

    def withdraw_bound_for(self, impl: str, scenario: Scenario, hold_time: float) -> float:
        """A stopped ExaBGP without a watch leaves when the routers' hold timer expires: wait
        that long (and a little) so the figure is its time, not a miss at the usual bound."""
        bound = self.withdraw_bound[impl]
        if scenario in (Scenario.EXABGP_HANG, Scenario.NODE_FREEZE) and self.await_hold_timer:
            return max(bound, hold_time + 3.0)
        return bound

    def max_run_seconds(self, impl: str, hold_time: float = 0.0) -> float:
        longest = max(self.withdraw_bound_for(impl, Scenario.EXABGP_HANG, hold_time), 0.0)
        events = max(longest, self.flaky_seconds)
        return events + self.recover_bound[impl] + self.steady_seconds + 30


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


class Runner:
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

    def _probe_before(self) -> tuple[dict, list[FlowResult]]:
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
        s, impl = self.settings, dep.implementation.value
        self.lab.wait_converged(30)
        quiet = scenario in QUIET_SCENARIOS  # no withdrawal deserved: nothing moves
        orders, before = ({}, []) if quiet else self._probe_before()
        self._serial += 1
        run_id = f"{impl}-{scenario}-{self._serial}"
        forwarding = s.second_chance is True
        who_forwards = forwarder(self.lab.topology, s.second_chance, dep.implementation)
        if forwarding:
            chance_driver.load(self.lab)  # before the connections open: conntrack sees them
        elif s.second_chance is False:
            chance_driver.unload(self.lab)
        held = self._hold(run_id)
        if forwarding and held is not None:
            chance_driver.load_owners(self.lab)
        load = SteadyLoad(
            self.lab,
            rate=s.rate,
            max_seconds=s.max_run_seconds(impl, self._hold_time),
            timeout=s.connection_timeout,
            first_port=self._next_ports(impl),
            run_id=run_id,
        ).start()
        notes: list[str] = []
        ll_window: tuple[float, float, Orders, Orders] | None = None  # since, until, orders
        withdraw = recovered = None
        per: dict[str, float | None] = {}
        moved: tuple[int | None, int | None, int | None] = (None, None, None)
        w_bound = r_bound = None
        withdrawals: int | None = None
        try:
            load.wait_flowing(max(3, int(s.rate / 2)))
            start = time.monotonic()
            ll_before = kernel_orders(self.lab)
            if scenario is Scenario.STEADY:
                load.wait_flowing(int(s.rate * s.steady_seconds), timeout=s.steady_seconds * 3 + 10)
                event = None
                ll_window = (start, time.monotonic(), ll_before, kernel_orders(self.lab))
            elif scenario is Scenario.FLAKY:
                event, ll_window = self._flaky_period(dep, lb, ll_before)
                withdrawals = fibs.withdrawals(event.at, ll_window[1], self._healthy(lb, True))
                notes += [f"{k}={v}" for k, v in event.detail.items()]
            else:
                event = trigger(dep, scenario, lb)
                w_bound = s.withdraw_bound_for(impl, scenario, self._hold_time)
                withdraw, per = fibs.time_all(lb, event.at, w_bound, back=False)
                if withdraw is not None:
                    finish(dep, event)
                    settled = time.monotonic()
                    ll_after = kernel_orders(self.lab)
                    after = run_flows(self.lab, self.flows, timeout=s.connection_timeout)
                    moved = moved_flows(self.lab.topology, self.flows, before, after, orders, lb)
                    # Every held connection exchanges a line at least every interval: within
                    # the stall bound of the settled moment, each one has seen its break.
                    rest = settled + s.long_lived_stall + 0.5 - time.monotonic()
                    if held is not None and rest > 0:
                        time.sleep(rest)
                    ll_window = (event.at, time.monotonic(), ll_before, ll_after)
                else:
                    notes.append("still in some FIB at the bound")
                t1 = recover(dep, event)
                if withdraw is not None and t1 is not None:
                    r_bound = s.recover_bound[impl]
                    # When ExaBGP respawned the agent by itself the event was the recovery act:
                    # then count from the moment the node was out of every FIB (the outage).
                    since = max(t1, event.at + withdraw)
                    if since > t1:
                        notes.append("recover counted from the withdrawal")
                    recovered, _ = fibs.time_all(lb, since, r_bound, back=True)
                notes += [f"{k}={v}" for k, v in event.detail.items()]
                load.wait_flowing(max(3, int(s.rate / 4)), timeout=10)
        finally:
            connections = load.stop()
            conns = held.stop() if held is not None else []
        end = time.monotonic()
        counts: BrokenCounts | None = None
        if held is not None and ll_window is not None:
            counts = broken_counts(
                self.lab.topology,
                conns,
                *ll_window[:2],
                lb,
                *ll_window[2:],
                forwarding=forwarding_prediction(who_forwards, scenario),
            )
            if who_forwards is not None:
                notes.append(f"second chance on ({who_forwards}-driven)")
            if counts.mismatch:
                notes.append(f"long-lived broken unlike predicted: {counts.mismatch}")
        healthy = self._healthy(lb, quiet)
        skip = frozenset({lb}) if scenario in ROUTER_SCENARIOS else frozenset()
        spurious = fibs.departures(start, end, healthy, skip)
        if spurious:
            notes.append("left a FIB: " + ",".join(spurious))
        in_window = [c for c in connections if c.start >= start - 1]
        if scenario is not Scenario.STEADY:
            respawned = event is not None and event.detail.get("after_kill") == "respawned"
            mended = restore(dep, lb, fresh_exabgp=respawned)
            if mended:
                notes.append("restored: " + ", ".join(mended))
        return Measurement(
            implementation=impl,
            scenario=scenario.value,
            run=run,
            node=lb,
            withdraw_s=withdraw,
            withdraw_bound_s=w_bound,
            recover_s=recovered,
            recover_bound_s=r_bound,
            connections=len(in_window),
            failed=sum(not c.ok for c in in_window),
            moved=moved[0],
            predicted_moved=moved[1],
            moved_mismatch=moved[2],
            spurious=len(spurious),
            long_lived=counts.open if counts else None,
            long_lived_broken=counts.broken if counts else None,
            long_lived_broken_collateral=counts.collateral if counts else None,
            long_lived_predicted_broken=counts.predicted if counts else None,
            withdrawals=withdrawals,
            per_router=per,
            note="; ".join(notes),
        )

    def _healthy(self, lb: str, quiet: bool) -> set[str]:
        """The LB nodes that deserve no withdrawal: all but `lb`, or all in a quiet run."""
        every = {x.name for x in self.lab.topology.lbs if x.vips}
        return every if quiet else every - {lb}

    def _flaky_period(
        self, dep: Deployment, lb: str, ll_before: Orders
    ) -> tuple[Event, tuple[float, float, Orders, Orders]]:
        """Make `lb`'s check late on some requests for `flaky_seconds`, then stop it; the
        period is the long-lived connections' window."""
        event = flaky_event(dep, lb, self.settings.flaky_percent)
        # A fixed observation period, not a wait for a condition: nothing is expected to end.
        time.sleep(max(0.0, event.at + self.settings.flaky_seconds - time.monotonic()))
        until = recover(dep, event)
        assert until is not None
        return event, (event.at, until, ll_before, kernel_orders(self.lab))


def run_experiments(
    lab: LabHandle,
    implementations: list[str],
    scenarios: list[str],
    lb: str,
    settings: Settings,
    say: Say | None = None,
    deploy_fn: Callable[[LabHandle, Implementation], Deployment] = deploy,
    restore_to: str | None = Implementation.ANYCAST,
    router: str | None = None,
) -> list[Measurement]:
    """Every scenario `settings.runs` times for every implementation, deploying each in turn
    on every LB node; at the end `restore_to` is deployed again (None: leave the last one).
    Router scenarios act on `router` (None: the first one router_acts.pick_router accepts;
    UserError when the topology has none). A bounded wait that runs out (the lab did not
    converge again, a daemon did not start) is a LabError naming the lab, like every other
    failure of the lab."""
    if any(Scenario(s) in ROUTER_SCENARIOS for s in scenarios):
        router = pick_router(lab.topology, router)
    nodes = {s: router if Scenario(s) in ROUTER_SCENARIOS else lb for s in scenarios}
    try:
        return _run_all(
            lab, implementations, scenarios, nodes, settings, say, deploy_fn, restore_to
        )
    except TimeoutError as exc:
        raise LabError(f"lab {lab.name}: {exc}") from exc


def _run_all(
    lab: LabHandle,
    implementations: list[str],
    scenarios: list[str],
    nodes: dict[str, str | None],
    settings: Settings,
    say: Say | None,
    deploy_fn: Callable[[LabHandle, Implementation], Deployment],
    restore_to: str | None,
) -> list[Measurement]:
    say = say or (lambda _msg: None)
    runner = Runner(lab, settings, say)
    out: list[Measurement] = []
    with FibSet(lab) as fibs:
        try:
            for impl in implementations:
                say(f"deploying {impl} on every LB node")
                dep = deploy_fn(lab, Implementation(impl))
                for scenario in scenarios:
                    for run in range(settings.runs):
                        node = nodes[scenario]
                        assert node is not None  # run_experiments picked one
                        m = runner.run(dep, Scenario(scenario), node, run, fibs)
                        say(_one_line(m))
                        out.append(m)
        finally:
            if restore_to is not None and list(implementations) != [restore_to]:
                say(f"deploying {restore_to} again")
                deploy_fn(lab, Implementation(restore_to))
    return out


def _one_line(m: Measurement) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f}ms"

    moved = (
        "" if m.moved is None else f" moved {m.moved}/{m.predicted_moved} (diff {m.moved_mismatch})"
    )
    held = "" if m.long_lived is None else f" long-lived broken {long_lived_cell(m)}"
    return (
        f"{m.implementation:<14} {m.scenario:<12} #{m.run}: withdraw {ms(m.withdraw_s)} "
        f"recover {ms(m.recover_s)} failed {m.failed}/{m.connections}{moved}{held} "
        f"spurious {m.spurious}" + (f"  [{m.note}]" if m.note else "")
    )
