"""Flows per second of the kernel-exact Linux model (one core, numpy).

    .venv/bin/python -m bench.bench_linux_hash [--flows N] [--chunk N]

Random IPv4 and IPv6 5-tuples are generated up front (not timed); the timed part is
select_nexthops() over them in chunks, as a whole-topology run would call it.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.linux import LinuxHashSettings, select_nexthops

WEIGHTS = [1, 1, 1, 1, 1, 1, 1, 1]


def random_flows(rng: np.random.Generator, n: int, family: int) -> FlowArrays:
    shape = (n,) if family == 4 else (n, 2)
    top = 1 << 32 if family == 4 else 1 << 64
    return FlowArrays(
        rng.integers(0, top, shape, dtype=np.uint64),
        rng.integers(0, top, shape, dtype=np.uint64),
        rng.choice(np.array([6, 17], dtype=np.uint8), n),
        rng.integers(1024, 65536, n),
        rng.integers(1, 65536, n),
        family,
    )


def measure(flows: FlowArrays, settings: LinuxHashSettings, chunk: int) -> float:
    start = time.perf_counter()
    for part in flows.chunks(chunk):
        select_nexthops(part, WEIGHTS, settings)
    return len(flows) / (time.perf_counter() - start)


def main(argv: list[str] | None = None, quick: bool = False) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=None, help="default 10M (--quick: 2M)")
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="2M flows unless --flows says")
    args = parser.parse_args([] if argv is None else argv)  # bench/__main__ calls main()
    if args.flows is None:
        args.flows = 2_000_000 if quick or args.quick else 10_000_000
    rng = np.random.default_rng(1)
    print(f"kernel-exact Linux model, {args.flows:,} flows in chunks of {args.chunk:,}, one core")
    for family in (4, 6):
        n = args.flows if family == 4 else args.flows // 4
        flows = random_flows(rng, n, family)
        for policy, forwarded in ((3, True), (3, False), (1, True), (0, True)):
            settings = LinuxHashSettings(policy=policy, fields=0x37, seed=7, forwarded=forwarded)
            measure(flows.chunk(0, min(n, 100_000)), settings, args.chunk)  # warm-up
            rate = measure(flows, settings, args.chunk)
            path = "forwarded" if forwarded else "local"
            speed = f"{rate / 1e6:6.2f} M flows/s"
            print(f"  IPv{family} policy {policy} {path:9}  {n:>11,} flows  {speed}")


if __name__ == "__main__":
    main(sys.argv[1:])
