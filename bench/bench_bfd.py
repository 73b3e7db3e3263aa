"""node-freeze (every process of an LB node stopped, its uplinks' traffic dropped, links up):
our agent with BFD (100 ms x 3, the topology default) against ExaBGP's healthcheck baseline
(exabgp-fast, no bfdd: only the BGP hold time, 9 s) in the same run, p50/p99 of the time
until lb1 is gone from every router's kernel FIB. Goal: p99 <= 1 s with BFD.

Root only. Environment: BENCH_BFD_RUNS (default 10; --quick: 1 each), BENCH_BFD_TAG.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 1.0


def main(quick: bool = False) -> None:
    if os.geteuid() != 0:
        print("bench_bfd: skipped (needs root: network namespaces, FRR, HAProxy, ExaBGP)")
        return
    from anycast_ctl.lab.experiments import failover_report
    from anycast_ctl.lab.experiments.baseline import Implementation
    from anycast_ctl.lab.experiments.failover import Settings, run_experiments
    from anycast_ctl.lab.experiments.scenarios import Scenario
    from anycast_ctl.lab.topology_up import Lab

    runs = int(os.environ.get("BENCH_BFD_RUNS", "1" if quick else "10"))
    started = time.monotonic()
    lab = Lab.up(
        REPO / "topologies" / "default.yaml", "bench-bfd", tag=os.environ.get("BENCH_BFD_TAG")
    )
    measurements = []
    try:
        for impl in (Implementation.ANYCAST, Implementation.EXABGP_FAST):
            measurements += run_experiments(
                lab,
                [impl.value],
                [Scenario.NODE_FREEZE.value],
                "lb1",
                Settings(runs=runs, probe_flows=40, long_lived=0, steady_seconds=2.0),
                say=lambda m: print("  " + m, flush=True),
                restore_to=None,
            )
    finally:
        lab.down()
    rows = failover_report.summarize(measurements)
    print()
    print(failover_report.format_table(rows))
    for row in rows:
        if row.implementation == Implementation.ANYCAST.value:
            ok = row.withdraw.p99 is not None and row.withdraw.p99 <= GOAL_S
            print(f"\ngoal node-freeze p99 <= {GOAL_S:g} s with BFD: {'met' if ok else 'MISSED'}")
    print(f"({runs} runs each, {time.monotonic() - started:.1f} s)")
