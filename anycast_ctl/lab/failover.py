"""Run failover scenarios on a lab and measure them (lab/scenarios.py acts, this module times).

One run, under steady client load (lab/steady.py):
  1. the lab is converged; probe flows are sent and land where the simulator says;
  2. the event (time T0); every adjacent router's FIB is watched (lab/fibwatch.py) until none
     uses the node: withdraw time = the last router's moment - T0;
  3. the same probe flows again: which moved, against the simulator's prediction for the
     node leaving (the kernel's next-hop order before, minus the node);
  4. the recovery act (T1); withdraw's mirror: until every adjacent router uses it again;
  5. failed steady-load connections, and withdrawals of other (healthy) nodes, over the run;
  6. restore anything still broken, so the next run starts from a converged lab.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from anycast_ctl.lab.baseline import Implementation
from anycast_ctl.lab.fibwatch import FibWatcher, state_at, with_any, without
from anycast_ctl.lab.report import Measurement
from anycast_ctl.lab.scenarios import Deployment, Scenario, recover, restore, trigger
from anycast_ctl.lab.state import LabError
from anycast_ctl.lab.steady import SteadyLoad, ports_needed
from anycast_ctl.lab.traffic import FlowResult, kernel_orders, plan_flows, predict, run_flows

Say = Callable[[str], None]


@dataclass
class Settings:
    runs: int = 5
    rate: float = 40.0  # steady-load connections per second (all clients together)
    connection_timeout: float = 2.0
    probe_flows: int = 120  # flows re-sent after the withdrawal to see which moved
    steady_seconds: float = 5.0  # the no-event observation period
    withdraw_bound: dict[str, float] = field(
        default_factory=lambda: {"anycast": 3.0, "exabgp-fast": 3.0, "exabgp-default": 12.0}
    )
    recover_bound: dict[str, float] = field(
        default_factory=lambda: {"anycast": 15.0, "exabgp-fast": 15.0, "exabgp-default": 30.0}
    )

    def max_run_seconds(self, impl: str) -> float:
        return self.withdraw_bound[impl] + self.recover_bound[impl] + self.steady_seconds + 30


class FibSet:
    """A FibWatcher on every router for every VIP, for the whole session."""

    def __init__(self, lab):
        self.lab = lab
        self.watchers: dict[tuple[str, str], FibWatcher] = {}

    def __enter__(self) -> FibSet:
        try:
            for router in self.lab.topology.routers:
                for vip in self.lab.topology.vips:
                    self.watchers[(router.name, vip.name)] = FibWatcher(
                        self.lab.namespace(router.name), vip.address
                    ).start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for watcher in self.watchers.values():
            watcher.close()
        self.watchers.clear()

    def gateways(self, router: str, vip: str, lb: str) -> set[str]:
        """The addresses `router` would use as next hops toward `lb` for `vip`."""
        topo, plan = self.lab.topology, self.lab.plan
        if lb not in topo.neighbors(router):
            return set()
        iface = plan.interface(lb, router)
        version = topo.vip(vip).version
        address = iface.ipv4 if version == 4 else iface.ipv6
        return {str(address.ip)} if address is not None else set()

    def adjacent(self, lb: str) -> dict[tuple[str, str], set[str]]:
        """(router, vip) -> the LB's gateways there, for every VIP it announces."""
        vips = self.lab.topology.lb(lb).vips
        out = {}
        for router, vip in self.watchers:
            gws = self.gateways(router, vip, lb) if vip in vips else set()
            if gws:
                out[(router, vip)] = gws
        return out

    def time_all(
        self, lb: str, since: float, timeout: float, back: bool
    ) -> tuple[float | None, dict[str, float | None]]:
        """Seconds from `since` until every adjacent router (for every VIP) no longer uses
        `lb` (back=False) or uses it again (back=True); None when that did not happen within
        `timeout`. Also the per "router/vip" times."""
        deadline = time.monotonic() + timeout
        per: dict[str, float | None] = {}
        for (router, vip), gws in self.adjacent(lb).items():
            predicate = with_any(gws) if back else without(gws)
            try:
                at = self.watchers[(router, vip)].wait_for(
                    predicate, since=since, timeout=max(0.0, deadline - time.monotonic())
                )
                per[f"{router}/{vip}"] = round(at - since, 6)
            except TimeoutError:
                per[f"{router}/{vip}"] = None
        if not per or any(v is None for v in per.values()):
            return None, per
        return max(per.values()), per

    def departures(self, start: float, end: float, healthy: set[str]) -> list[str]:
        """Each (router, vip, lb) where a healthy LB's gateway, in use at `start`, was
        missing at some moment before `end`."""
        found = []
        for (router, vip), watcher in self.watchers.items():
            samples = watcher.samples()
            first = state_at(samples, start)
            if first is None:
                continue
            window = [first] + [s for s in samples if start < s.time <= end]
            for lb in sorted(healthy):
                gws = self.gateways(router, vip, lb) & first.gateways
                if gws and any(not (gws <= s.gateways) for s in window):
                    found.append(f"{router}/{vip}/{lb}")
        return found


def moved_flows(
    topo, flows, before: list[FlowResult], after: list[FlowResult], orders: dict, lb: str
) -> tuple[int, int, int]:
    """(observed moved, predicted moved, size of the symmetric difference), over the flows
    that succeeded both times. The prediction: the kernel's order before, without `lb`."""
    pred_before = predict(topo, flows, orders)
    without_lb = {
        vip: {r: [n for n in order if n != lb] for r, order in routers.items()}
        for vip, routers in orders.items()
    }
    pred_after = predict(topo, flows, without_lb)
    both = [i for i in range(len(flows)) if before[i].ok and after[i].ok]
    observed = {i for i in both if before[i].lb != after[i].lb}
    predicted = {i for i in both if pred_before[i] != pred_after[i]}
    return len(observed), len(predicted), len(observed ^ predicted)


class Runner:
    def __init__(self, lab, settings: Settings, say: Say | None = None):
        self.lab, self.settings = lab, settings
        self.say = say or (lambda _msg: None)
        self.flows = plan_flows(lab.topology, settings.probe_flows, first_port=20000)
        self._port = 30000
        self._serial = 0

    def _next_ports(self, impl: str) -> int:
        need = ports_needed(
            self.settings.rate, self.settings.max_run_seconds(impl), len(self.lab.topology.clients)
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
        orders, before = self._probe_before() if scenario is not Scenario.STEADY else ({}, [])
        self._serial += 1
        load = SteadyLoad(
            self.lab,
            rate=s.rate,
            max_seconds=s.max_run_seconds(impl),
            timeout=s.connection_timeout,
            first_port=self._next_ports(impl),
            run_id=f"{impl}-{scenario}-{self._serial}",
        ).start()
        notes: list[str] = []
        withdraw = recovered = None
        per: dict[str, float | None] = {}
        moved = (None, None, None)
        w_bound = r_bound = None
        try:
            load.wait_flowing(max(3, int(s.rate / 2)))
            start = time.monotonic()
            if scenario is Scenario.STEADY:
                load.wait_flowing(int(s.rate * s.steady_seconds), timeout=s.steady_seconds * 3 + 10)
                event = None
            else:
                event = trigger(dep, scenario, lb)
                w_bound = s.withdraw_bound[impl]
                withdraw, per = fibs.time_all(lb, event.at, w_bound, back=False)
                if withdraw is not None:
                    after = run_flows(self.lab, self.flows, timeout=s.connection_timeout)
                    moved = moved_flows(self.lab.topology, self.flows, before, after, orders, lb)
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
        end = time.monotonic()
        healthy = {x.name for x in self.lab.topology.lbs if x.vips} - (
            {lb} if scenario is not Scenario.STEADY else set()
        )
        spurious = fibs.departures(start, end, healthy)
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
            per_router=per,
            note="; ".join(notes),
        )


def run_experiments(
    lab,
    implementations: list[str],
    scenarios: list[str],
    lb: str,
    settings: Settings,
    say: Say | None = None,
    deploy_fn=None,
    restore_to: str | None = Implementation.ANYCAST,
) -> list[Measurement]:
    """Every scenario `settings.runs` times for every implementation, deploying each in turn
    on every LB node; at the end `restore_to` is deployed again (None: leave the last one)."""
    from anycast_ctl.lab.scenarios import deploy

    deploy_fn = deploy_fn or deploy
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
                        m = runner.run(dep, Scenario(scenario), lb, run, fibs)
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
    return (
        f"{m.implementation:<14} {m.scenario:<12} #{m.run}: withdraw {ms(m.withdraw_s)} "
        f"recover {ms(m.recover_s)} failed {m.failed}/{m.connections}{moved} spurious {m.spurious}"
        + (f"  [{m.note}]" if m.note else "")
    )
