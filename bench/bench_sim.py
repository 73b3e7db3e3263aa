"""Whole-topology simulator throughput and memory: flows per second and peak RSS.

    .venv/bin/python -m bench.bench_sim                 # 2M flows per case (a few seconds each)
    .venv/bin/python -m bench.bench_sim --flows 100M    # the streamed 100-million-flow run

Flows are generated and routed chunk by chunk (anycast_ctl.sim.flows.BLOCK at a time), so
the peak RSS must not grow with --flows.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from anycast_ctl.config.topology import load_topology
from anycast_ctl.sim.fabric import default_events
from anycast_ctl.sim.run import flow_batches, simulate

TOPOLOGIES = Path(__file__).resolve().parents[1] / "topologies"
CASES = [
    # (topology, algorithm override, with events?)
    ("default.yaml", None, False),
    ("leaf-spine.yaml", None, False),
    ("leaf-spine.yaml", "maglev", False),
    ("leaf-spine.yaml", None, True),
]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def count(text: str) -> int:
    text = text.lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def run_case(path: str, algorithm: str | None, with_events: bool, flows: int) -> None:
    topo = load_topology(TOPOLOGIES / path)
    events = default_events(topo) if with_events else []
    start = time.perf_counter()
    result = simulate(
        topo, flow_batches(topo, flows=flows, seed=1), events=events, algorithm=algorithm
    )
    elapsed = time.perf_counter() - start
    suffix = f", {len(events)} events" if events else ""
    label = f"{topo.name} ({algorithm or 'as configured'}{suffix})"
    walks = 1 + len(events)  # each event routes every flow once more
    print(
        f"{label:42s} {result.flows:>11,} flows  {result.flows / elapsed / 1e6:6.2f} M flows/s"
        f"  ({result.flows * walks / elapsed / 1e6:5.2f} M walks/s)"
        f"  peak RSS {peak_rss_mib():6.0f} MiB  imbalance {result.imbalance:.4f}",
        flush=True,
    )


def main(argv: list[str] | None = None, quick: bool = False) -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_sim", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--flows",
        type=count,
        default=None,
        help="flows per case, e.g. 2M or 100M (default 2M; --quick: 500k)",
    )
    parser.add_argument("--only", help="run only cases whose topology path contains this")
    parser.add_argument("--quick", action="store_true", help="500k flows unless --flows says")
    args = parser.parse_args(argv if argv is not None else [])
    if args.flows is None:
        args.flows = 500_000 if quick or args.quick else 2_000_000
    print(f"flows generated and routed in chunks; RSS before: {peak_rss_mib():.0f} MiB")
    for path, algorithm, with_events in CASES:
        if args.only is None or args.only in path:
            run_case(path, algorithm, with_events, args.flows)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
