"""Steady client load for failover experiments, run inside a client's namespace:

    python -m anycast_ctl.lab.programs.steady_client --ca ca.pem --flows flows.json \
        --out results.jsonl --stop-file STOP [--rate 50] [--timeout 2]

Opens the TLS connections listed in flows.json (as lab/programs/traffic_client.py does: own source
address and port, certificate verified, one answer line) at a steady `rate` per second, each
at its own time, whether or not earlier ones finished: a stalled LB must not slow the stream
down. Stops launching once STOP exists (looked at before each launch, so within 1/rate), at
SIGTERM, or when the list runs out; lets the connections in flight finish (each bounded by
--timeout), and exits.

Every finished connection is one JSON line in --out, flushed at once:
    {"i", "src", "sport", "dst", "dport", "start" (CLOCK_MONOTONIC, shared by every process
     on the host, namespaces included), "ok", "line", "error", "seconds"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from anycast_ctl.lab.programs.traffic_client import client_context, one_flow


async def stream(flows: list[dict], ctx, rate: float, timeout: float, out, stop_file: Path) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    async def one(i: int, flow: dict, start: float) -> None:
        result = await one_flow(flow, ctx, timeout)
        out.write(json.dumps({"i": i, "start": start, **result}) + "\n")
        out.flush()

    tasks: set[asyncio.Task] = set()
    begin = time.monotonic()
    for i, flow in enumerate(flows):
        due = begin + i / rate
        if stop_file.exists():
            break
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
            break  # stopped
        except TimeoutError:
            pass
        task = asyncio.create_task(one(i, flow, time.monotonic()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anycast_ctl.lab.programs.steady_client")
    parser.add_argument("--ca", required=True, type=Path)
    parser.add_argument("--flows", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--stop-file", required=True, type=Path)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    try:
        flows = json.loads(args.flows.read_text())
        ctx = client_context(args.ca)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.rate <= 0:
        print("error: --rate must be positive", file=sys.stderr)
        return 2
    with open(args.out, "a") as out:
        return asyncio.run(stream(flows, ctx, args.rate, args.timeout, out, args.stop_file))


if __name__ == "__main__":
    sys.exit(main())
