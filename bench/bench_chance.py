"""Second chance under long-lived TLS load, the agents' own tables (the default: heartbeats
and the likely-owner chain) vs forwarding off, in one run: default.yaml drain of lb1 and
HAProxy kill on lb1, leaf-spine.yaml drain of and HAProxy kill on lb1 (one of eight
withdrawn). Prints long_lived_broken and long_lived_broken_collateral side by side.
BENCH_CHANCE_LAB=1 adds a third setting: the tables loaded by the lab
(lab/experiments/chance_driver.py, per-flow entries). The agents' own go first: "off"
removes every table (the agents are not told), so nothing of theirs is measured after it.

Root only. Environment:
    BENCH_CHANCE_RUNS   runs per scenario and setting (default 5; --quick: 1)
    BENCH_CHANCE_HELD   long-lived connections per run (default 200; --quick: 50)
--quick runs leaf-spine's HAProxy kill with the agents' own tables only (QUICK_LEFT_OUT).
The labs' tags are PREFIX-default and PREFIX-leaf-spine (bench/labs.py). Both are given back
spoiled (the lab's tables stay loaded, and the agents' own idea of their table is stale), so
`python -m bench` runs this module after every other that uses the default topology.
"""

from __future__ import annotations

import os
import time

from bench.labs import LabPool, pool_for

CASES = [
    ("default", "drain"),
    ("default", "haproxy-kill"),
    ("leaf-spine", "drain"),
    ("leaf-spine", "haproxy-kill"),
]
# --quick keeps every scenario once but runs leaf-spine (8 LB nodes, the slowest lab to run
# against) for its HAProxy kill with the agents' own tables alone: the comparison with
# forwarding off is made on default.yaml; the full run makes every case.
QUICK_LEFT_OUT = {
    ("leaf-spine", "drain", "agent"),
    ("leaf-spine", "drain", "off"),
    ("leaf-spine", "haproxy-kill", "off"),
}
# Settings.second_chance of each setting, in the order run.
SETTINGS: dict[str, bool | None] = {"agent": None, "off": False, "lab": True}
LABS = tuple(dict.fromkeys(t for t, _ in CASES))


def main(quick: bool = False, labs: LabPool | None = None) -> None:
    if os.geteuid() != 0:
        print("bench_chance: skipped (needs root: network namespaces, FRR, HAProxy, ExaBGP)")
        return
    from anycast_ctl.lab.experiments.baseline import Implementation
    from anycast_ctl.lab.experiments.failover import run_experiments
    from anycast_ctl.lab.experiments.failover_settings import Settings

    runs = int(os.environ.get("BENCH_CHANCE_RUNS", "1" if quick else "5"))
    held = int(os.environ.get("BENCH_CHANCE_HELD", "50" if quick else "200"))
    settings = ["agent", "off", *(["lab"] if os.environ.get("BENCH_CHANCE_LAB") else [])]
    started = time.monotonic()
    rows = []
    with pool_for(labs) as pool:
        for topology in LABS:
            lab = pool.lab(topology)
            for setting in settings:
                scenarios = [
                    s
                    for t, s in CASES
                    if t == topology and not (quick and (t, s, setting) in QUICK_LEFT_OUT)
                ]
                if not scenarios:
                    continue
                for m in run_experiments(
                    lab,
                    [Implementation.ANYCAST.value],
                    scenarios,
                    "lb1",
                    Settings(runs=runs, rate=10, long_lived=held, second_chance=SETTINGS[setting]),
                    say=lambda msg: print("  " + msg, flush=True),
                    restore_to=None,
                ):
                    rows.append((topology, m.scenario, setting, m))
            pool.spoil(topology)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nsecond chance, {runs} runs x {held} long-lived connections (load average {load})")
    print(f"{'topology':<11} {'scenario':<13} {'forwarding':<10} broken (per run)   collateral")
    for topology, scenario in CASES:
        for setting in settings:
            ms = [m for t, s, o, m in rows if (t, s, o) == (topology, scenario, setting)]
            if not ms:
                continue
            broken = "/".join(f"{m.long_lived_broken}/{m.long_lived}" for m in ms)
            collateral = "/".join(str(m.long_lived_broken_collateral) for m in ms)
            print(f"{topology:<11} {scenario:<13} {setting:<10} {broken:<18} {collateral}")
    print(f"({time.monotonic() - started:.0f} s)")
