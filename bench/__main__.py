"""`make bench`: run every bench/bench_*.py module's main() and print its figures.

    python -m bench [--quick] [--lab-prefix P] [NAME ...]   # NAME: modules whose name has it

`--quick` (`make bench QUICK=1`) runs every bench and every scenario at least once, with
fewer repetitions, flows and long-lived connections and shorter windows: a check that nothing
regressed badly within QUICK_BUDGET_S (5 minutes), against the full run's twenty-odd. It
leaves out the default-settings baseline (slow by design). The full run's figures are the
ones the docs quote.

The modules that need no lab run first, then the lab ones, which share their labs
(bench/labs.py): each lab comes up once and goes down after the last module that lists its
topology. The lab modules run in LAB_ORDER, so that each starts with the deployment the one
before left (a redeploy restarts ExaBGP on every LB node), and the one that spoils its labs
last. Every module's wall and CPU time is printed after it and again at the end, with the
total; a quick run over its budget says so in a WARNING line.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import pkgutil
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bench.labs import PREFIX_ENV, BadPrefix, LabPool, prefix_from_env, still_needed

QUICK_BUDGET_S = 300.0
# failover ends on the default topology with a baseline, which bfd measures first and leaves
# our agent behind, which recovery starts from; chance loads the lab's own tables (spoils).
LAB_ORDER = ("bench_failover", "bench_bfd", "bench_recovery", "bench_chance")


@dataclass(frozen=True)
class Timing:
    name: str
    wall: float
    cpu: float  # this process and the children it waited for


def run_order(modules: dict[str, tuple[str, ...]]) -> list[str]:
    """Module names (name -> the topologies it uses) in the order to run them: those without
    a lab first, by name; then the lab ones in LAB_ORDER, any other before the last of it."""

    def key(name: str) -> tuple[int, int, str]:
        if not modules[name]:
            return (0, 0, name)
        known = LAB_ORDER.index(name) if name in LAB_ORDER else len(LAB_ORDER) - 1.5
        return (1, int(2 * known), name)

    return sorted(modules, key=key)


def summary(timings: list[Timing], total: float, quick: bool, loads: tuple[float, float]):
    """The closing lines: one per module, the total, and the budget verdict of a quick run."""
    lines = [f"\nbench{' --quick' if quick else ''}: wall / CPU per module"]
    width = max((len(t.name) for t in timings), default=5)
    for t in timings:
        lines.append(f"  {t.name:<{width}}  {t.wall:7.1f} s  cpu {t.cpu:7.1f} s")
    cpu = sum(t.cpu for t in timings)
    lines.append(f"  {'total':<{width}}  {total:7.1f} s  cpu {cpu:7.1f} s")
    lines.append(f"  load average (1 min) {loads[0]:.1f} at the start, {loads[1]:.1f} at the end")
    if quick:
        if total > QUICK_BUDGET_S:
            lines.append(
                f"WARNING: the quick bench took {total:.0f} s, over its {QUICK_BUDGET_S:.0f} s "
                "budget (a loaded machine stretches it: compare the CPU time)"
            )
        else:
            lines.append(f"  within the quick budget of {QUICK_BUDGET_S:.0f} s")
    return lines


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run(module: ModuleType, quick: bool, pool: LabPool) -> None:
    if "labs" in inspect.signature(module.main).parameters:
        module.main(quick=quick, labs=pool)
    else:
        module.main(quick=quick)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, every scenario once")
    parser.add_argument(
        "--lab-prefix",
        help=f"labs' tag prefix: tags PREFIX-TOPOLOGY (default ${PREFIX_ENV} or acx-bench)",
    )
    parser.add_argument("selected", nargs="*", help="run only modules whose name contains one")
    args = parser.parse_args(argv)
    try:
        prefix = prefix_from_env(args.lab_prefix)
    except BadPrefix as exc:
        print(f"python -m bench: --lab-prefix: {exc}", file=sys.stderr)
        return 2
    os.environ[PREFIX_ENV] = prefix  # a module's own helpers (footprint's namespace) read it
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.selected:
        names = [n for n in names if any(s in n for s in args.selected)]
    modules = {n: importlib.import_module(f"bench.{n}") for n in names}
    order = run_order({n: tuple(getattr(m, "LABS", ())) for n, m in modules.items()})
    loads = os.getloadavg()[0]
    started = time.perf_counter()
    timings: list[Timing] = []
    with LabPool(prefix) as pool:
        for i, name in enumerate(order):
            print(f"\n=== {name}{' (quick)' if args.quick else ''}", flush=True)
            wall, cpu = time.perf_counter(), _cpu()
            pool.later = still_needed(getattr(modules[n], "LABS", ()) for n in order[i + 1 :])
            _run(modules[name], args.quick, pool)
            pool.keep_only(pool.later)
            timing = Timing(name, time.perf_counter() - wall, _cpu() - cpu)
            timings.append(timing)
            print(f"--- {name} took {timing.wall:.1f}s (cpu {timing.cpu:.1f}s)", flush=True)
    total = time.perf_counter() - started
    print("\n".join(summary(timings, total, args.quick, (loads, os.getloadavg()[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
