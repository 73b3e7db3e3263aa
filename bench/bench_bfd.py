"""node-freeze (every process of an LB node stopped, its uplinks' traffic dropped, links up):
our agent with BFD (100 ms x 3, the topology default) against ExaBGP's healthcheck baseline
(exabgp-fast, no bfdd: only the BGP hold time, 9 s) in the same run, p50/p99 of the time
until lb1 is gone from every router's kernel FIB. Goal: p99 <= 1 s with BFD.

The baseline runs first: the quick bench's failover module leaves it deployed, and this one
leaves our agent for bench_recovery (bench/__main__.py).

Root only. Environment: BENCH_BFD_RUNS (default 10; --quick: 1 each); the lab's tag is
PREFIX-default (bench/labs.py).
"""

from __future__ import annotations

import os
import time

from bench.labs import LabPool, pool_for

LABS = ("default",)
GOAL_S = 1.0


def main(quick: bool = False, labs: LabPool | None = None) -> None:
    if os.geteuid() != 0:
        print("bench_bfd: skipped (needs root: network namespaces, FRR, HAProxy, ExaBGP)")
        return
    from anycast_ctl.lab.experiments import failover_report
    from anycast_ctl.lab.experiments.baseline import Implementation
    from anycast_ctl.lab.experiments.failover import run_experiments
    from anycast_ctl.lab.experiments.failover_settings import Settings
    from anycast_ctl.lab.experiments.scenario_names import Scenario

    runs = int(os.environ.get("BENCH_BFD_RUNS", "1" if quick else "10"))
    started = time.monotonic()
    measurements = []
    with pool_for(labs) as pool:
        lab = pool.lab("default")
        for impl in (Implementation.EXABGP_FAST, Implementation.ANYCAST):
            measurements += run_experiments(
                lab,
                [impl.value],
                [Scenario.NODE_FREEZE.value],
                "lb1",
                Settings(runs=runs, probe_flows=40, long_lived=0, steady_seconds=2.0),
                say=lambda m: print("  " + m, flush=True),
                restore_to=None,
            )
    rows = failover_report.summarize(measurements)
    print()
    print(failover_report.format_table(rows))
    for row in rows:
        if row.implementation == Implementation.ANYCAST.value:
            ok = row.withdraw.p99 is not None and row.withdraw.p99 <= GOAL_S
            print(f"\ngoal node-freeze p99 <= {GOAL_S:g} s with BFD: {'met' if ok else 'MISSED'}")
    print(f"({runs} runs each, {time.monotonic() - started:.1f} s)")
