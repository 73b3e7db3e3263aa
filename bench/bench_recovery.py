"""Recovery after an ExaBGP restart, and detection against the router's own floor, on the
default topology in one run: our agent vs ExaBGP's healthcheck (fast settings) on lb1.

- exabgp-restart: ExaBGP SIGKILLed, then started again (what systemd's restart does); timed
  from just before the start to lb1 back in every router's FIB, p50/p99 per implementation;
- the ratio of the agent's HAProxy-kill withdraw p99 to its ExaBGP-kill withdraw p99 (the
  router's own floor: the session closes), with both p99s (goal <= 1.25).

Root only (a lab in namespaces). BENCH_RECOVERY_RUNS: runs per case (default 10; --quick: 2).
The lab's tag is PREFIX-default (bench/labs.py); our agent is deployed first, as another module
of the same run may have left a baseline.
"""

from __future__ import annotations

import os
import statistics

from bench.labs import LabPool, pool_for

LABS = ("default",)
LB = "lb1"


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<28} no measurement"
    return (
        f"{name:<28} p50 {statistics.median(values):6.3f} s  p99 {p(values, 0.99):6.3f} s"
        f"  (n={len(values)})"
    )


def main(quick: bool = False, labs: LabPool | None = None) -> None:
    if os.geteuid() != 0:
        print("bench_recovery: skipped (needs root: network namespaces, FRR, HAProxy, ExaBGP)")
        return
    from anycast_ctl.lab.experiments.baseline import Implementation
    from anycast_ctl.lab.experiments.deployment import (
        Deployment,
        deploy,
        start_exabgp,
        stop_exabgp,
        wait_ready,
    )
    from anycast_ctl.lab.experiments.scenario_names import Scenario
    from anycast_ctl.lab.experiments.scenarios import recover, trigger
    from anycast_ctl.lab.observe.fibset import FibSet

    runs = int(os.environ.get("BENCH_RECOVERY_RUNS", "2" if quick else "10"))
    back: dict[str, list[float]] = {}
    withdraw: dict[str, list[float]] = {"haproxy-kill": [], "exabgp-kill": []}
    with pool_for(labs) as pool:
        lab = pool.lab("default")
        deploy(lab, Implementation.ANYCAST)
        with FibSet(lab) as fibs:
            for impl in (Implementation.ANYCAST, Implementation.EXABGP_FAST):
                dep = Deployment(lab, impl)
                if impl is not Implementation.ANYCAST:  # swap lb1's API process only
                    stop_exabgp(dep, LB)
                    start_exabgp(dep, LB)
                    wait_ready(dep, LB)
                scenarios = [Scenario.EXABGP_KILL]
                if impl is Implementation.ANYCAST:
                    scenarios.append(Scenario.HAPROXY_KILL)
                for scenario in scenarios:
                    for _ in range(runs):
                        lab.wait_converged(30)
                        event = trigger(dep, scenario, LB)
                        gone, _ = fibs.time_all(LB, event.at, 5.0, back=False)
                        t1 = recover(dep, event)
                        assert t1 is not None
                        again, _ = fibs.time_all(LB, t1, 15.0, back=True)
                        if impl is Implementation.ANYCAST and gone is not None:
                            withdraw[scenario.value].append(gone)
                        if scenario is Scenario.EXABGP_KILL and again is not None:
                            back.setdefault(impl.value, []).append(again)
                        if again is None or gone is None:
                            print(f"  {impl} {scenario}: not back/gone within the bound")
    load = os.getloadavg()[0]
    print(f"default topology, node {LB}, {runs} runs per case, load {load:.1f} at the end")
    print("ExaBGP restart -> back in every router's FIB:")
    for name, values in back.items():
        print("  " + line(name, values))
    hk, ek = withdraw["haproxy-kill"], withdraw["exabgp-kill"]
    print("withdraw (agent), out of every router's FIB:")
    print("  " + line("haproxy-kill", hk))
    print("  " + line("exabgp-kill (router floor)", ek))
    if hk and ek:
        ratio = p(hk, 0.99) / p(ek, 0.99)
        print(f"  haproxy-kill p99 / exabgp-kill p99 = {ratio:.2f} (goal <= 1.25)")
