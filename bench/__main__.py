"""`make bench`: run every bench/bench_*.py module's main() and print its figures.

    python -m bench [--quick] [NAME ...]      # NAME: run only modules whose name contains it

`--quick` (`make bench QUICK=1`) runs every bench, and every failover scenario once for the
agent and the fast ExaBGP baseline, with fewer repetitions and flows: a few minutes instead of
the full run's twenty-odd, for a check that nothing regressed badly. It leaves out the
default-settings baseline (slow by design). The full run's figures are the ones the docs quote.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, every scenario once")
    parser.add_argument("selected", nargs="*", help="run only modules whose name contains one")
    args = parser.parse_args(argv)
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.selected:
        names = [n for n in names if any(s in n for s in args.selected)]
    started = time.perf_counter()
    for name in names:
        print(f"\n=== {name}{' (quick)' if args.quick else ''}", flush=True)
        start = time.perf_counter()
        importlib.import_module(f"bench.{name}").main(quick=args.quick)
        print(f"--- {name} took {time.perf_counter() - start:.1f}s", flush=True)
    print(f"\nbench{' --quick' if args.quick else ''}: {time.perf_counter() - started:.1f}s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
