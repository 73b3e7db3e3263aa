"""Failover figures on the default topology: our agent vs ExaBGP's healthcheck (fastest and
default settings), every LB scenario N times, p50/p99; plus the two goals (a HAProxy crash out
of every FIB in < 300 ms p99, and no withdrawal a healthy service did not deserve). Before
them (so the two labs are never up at once) the router scenarios (router-kill, router-drain)
with the agent on topologies/hybrid.yaml, whose two edge routers can stand in for each other.
Every run holds long-lived connections and counts the ones the event broke against the
simulator's prediction. The hang scenarios
(agent-hang, exabgp-hang) have their own goal (p99 <= 1 s), and flaky (lb1's own check late on
5 % of requests for a fixed period) counts withdrawals and broken connections, for the agent
and the baseline against the same flakiness. node-freeze is bench_bfd's (10 runs with the
baseline waited out to its hold time), not repeated here.

--quick: every scenario once for the agent, with fewer probe flows (40) and long-lived
connections (50) with a 2 s stall bound, a 2 s steady period and a 5 s flaky one (full: 120,
200, 3 s, 5 s, 20 s); the fast baseline once in the scenarios where it has a figure within the
quick bounds (not QUICK_BASELINE_SKIPS: there it never withdraws, or only at the hold timer).

Root only (labs in namespaces: PREFIX-hybrid, PREFIX-default, bench/labs.py). Environment:
    BENCH_FAILOVER_RUNS      runs per scenario for the agent and the fast baseline (default 20;
                             --quick: 1)
    BENCH_FAILOVER_RUNS_DEFAULT  runs for the default-settings baseline (default 5: ~20 s each;
                             --quick: 0, i.e. skipped: its 12 s bounds alone took ~2 of the
                             quick run's minutes; set it to 1 to include it)
    BENCH_FAILOVER_OUT       directory for failover.json and failover.png
                             (default /tmp/anycast-ctl-bench)
    BENCH_FAILOVER_ROUTER_RUNS  runs per router scenario (default 10; --quick: 1)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bench.labs import LabPool, pool_for

LABS = ("default", "hybrid")  # the router scenarios need hybrid's two edge routers


def quick_settings() -> dict:
    """What --quick changes in each run (failover_settings.Settings fields): a check that nothing
    regressed badly, not figures to quote."""
    return {
        "long_lived": 50,
        "probe_flows": 40,
        "steady_seconds": 2.0,
        "flaky_seconds": 5.0,
        "await_hold_timer": False,
        # An echo later than 2 s is a break (still above three retransmissions, 1.4 s at TCP's
        # minimum RTO): each withdrawing run waits 1 s less for its breaks to show (full: 3 s).
        "long_lived_stall": 2.0,
    }


# The fast baseline's outcome of these within the quick bounds is known and no figure: it never
# withdraws (a hung HAProxy or healthcheck; a killed one respawns) or only at the routers' hold
# timer, which --quick does not wait for. --quick leaves them to the full run.
QUICK_BASELINE_SKIPS = ("haproxy-hang", "agent-kill", "agent-hang", "exabgp-hang")


def scenarios_for(implementation: str, scenarios: list[str], quick: bool) -> list[str]:
    if not quick or implementation == "anycast":
        return scenarios
    return [s for s in scenarios if s not in QUICK_BASELINE_SKIPS]


def main(quick: bool = False, labs: LabPool | None = None) -> None:
    if os.geteuid() != 0:
        print("bench_failover: skipped (needs root: network namespaces, FRR, HAProxy, ExaBGP)")
        return
    from anycast_ctl.lab.experiments import failover_report
    from anycast_ctl.lab.experiments.baseline import Implementation
    from anycast_ctl.lab.experiments.failover import run_experiments
    from anycast_ctl.lab.experiments.failover_settings import Settings
    from anycast_ctl.lab.experiments.scenario_names import ROUTER_SCENARIOS, Scenario

    runs = int(os.environ.get("BENCH_FAILOVER_RUNS", "1" if quick else "20"))
    runs_default = int(os.environ.get("BENCH_FAILOVER_RUNS_DEFAULT", "0" if quick else "5"))
    out = Path(os.environ.get("BENCH_FAILOVER_OUT", "/tmp/anycast-ctl-bench"))
    out.mkdir(parents=True, exist_ok=True)
    scenarios = [
        s.value for s in Scenario if s not in ROUTER_SCENARIOS and s is not Scenario.NODE_FREEZE
    ]
    router_scenarios = [s.value for s in Scenario if s in ROUTER_SCENARIOS]
    router_runs = int(os.environ.get("BENCH_FAILOVER_ROUTER_RUNS", "1" if quick else "10"))
    plan = [
        (impl, n)
        for impl, n in (
            (Implementation.ANYCAST, runs),
            (Implementation.EXABGP_FAST, runs),
            (Implementation.EXABGP_DEFAULT, runs_default),
        )
        if n > 0
    ]
    if runs_default <= 0:
        print(
            f"{Implementation.EXABGP_DEFAULT}: skipped "
            "(BENCH_FAILOVER_RUNS_DEFAULT=1 adds it, ~20 s a scenario)"
        )
    settings = quick_settings() if quick else {"long_lived": 200}
    started = time.monotonic()
    measurements = []
    with pool_for(labs) as pool:
        # The router scenarios first: the hybrid lab is down again before the default one
        # comes up, so no idle lab shares the cores with a measurement.
        print(f"hybrid: {router_runs} runs x {len(router_scenarios)} router scenarios", flush=True)
        measurements += run_experiments(
            pool.lab("hybrid"),
            [Implementation.ANYCAST.value],
            router_scenarios,
            "lb1",
            Settings(runs=router_runs, **settings),
            say=lambda m: print("  " + m, flush=True),
            restore_to=None,
        )
        pool.done("hybrid")
        lab = pool.lab("default")
        for impl, n in plan:
            mine = scenarios_for(impl.value, scenarios, quick)
            left = [s for s in scenarios if s not in mine]
            skipped = f" (--quick leaves {', '.join(left)} to the full run)" if left else ""
            print(f"{impl}: {n} runs x {len(mine)} scenarios{skipped}", flush=True)
            measurements += run_experiments(
                lab,
                [impl.value],
                mine,
                "lb1",
                Settings(runs=n, **settings),
                say=lambda m: print("  " + m, flush=True),
                restore_to=None,
            )
    rows = failover_report.summarize(measurements)
    print()
    print(failover_report.format_table(rows))
    print()
    for impl, _ in plan:
        print(failover_report.format_goals(failover_report.goals(rows, impl.value), impl.value))
    meta = {
        "topology": "default (router scenarios: hybrid, router r1)",
        "node": "lb1",
        "runs": {i.value: n for i, n in plan} | {"router scenarios": router_runs},
        "seconds": round(time.monotonic() - started, 1),
    }
    (out / "failover.json").write_text(
        json.dumps(failover_report.to_json(measurements, meta), indent=2) + "\n"
    )
    failover_report.write_plot(
        measurements,
        str(out / "failover.png"),
        title="failover: default topology (lb1), hybrid (r1); p50 bar / p99 whisker",
    )
    print(f"\nwrote {out / 'failover.json'} and {out / 'failover.png'}")
