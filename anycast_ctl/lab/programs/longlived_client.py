"""Long-lived TLS connections for failover experiments, run inside a client's namespace:

    python -m anycast_ctl.lab.programs.longlived_client --ca ca.pem --flows flows.json \
        --out results.json --ready-file READY --stop-file STOP [--interval 0.05] [--stall 3] \
        [--cert client.pem --key client.key]

Opens every connection listed in flows.json (own source address and port, certificate
verified, as lab/programs/traffic_client.py does) offering the ALPN protocol `anycast-hold`,
so the backend answers its one line and then echoes. Each connection then sends a short line
every --interval seconds and waits for its echo. A connection is broken when the exchange
fails: a reset (a router moved the flow to an LB node that has no such connection), an end of
stream (its HAProxy died), a TLS error, or an echo that takes longer than --stall seconds (its
packets go nowhere). A broken connection is not reopened.

Once every connection has been tried, READY is written: {"opened", "failed"}. At STOP (looked
at every 0.1 s) or SIGTERM every connection still held says `bye` and waits (bounded) for the
backend to close first, which leaves no TIME_WAIT here for the next run's connections to
trip over; then --out is written, one object per
flow in flows.json order:
    {"i", "src", "sport", "ok" (opened), "line" (the backend's), "opened" and "broken"
     (CLOCK_MONOTONIC or null), "error", "messages" (echoes received)}
A single asyncio loop holds hundreds of connections on a fraction of one core; their sends
are spread over the interval so they do not come in bursts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import signal
import ssl
import sys
import time
from pathlib import Path

from anycast_ctl.lab.programs.backend import HOLD_ALPN
from anycast_ctl.lab.programs.traffic_client import MAX_LINE, _bound_socket, client_context

OPEN_CONCURRENCY = 32  # handshakes at a time: hundreds at once would stall the first ones


class Held:
    def __init__(self, i: int, flow: dict):
        self.i, self.flow = i, flow
        self.ok = False
        self.line: str | None = None
        self.opened: float | None = None
        self.broken: float | None = None
        self.error: str | None = None
        self.messages = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def result(self) -> dict:
        return {
            "i": self.i,
            "src": self.flow["src"],
            "sport": self.flow["sport"],
            "ok": self.ok,
            "line": self.line,
            "opened": self.opened,
            "broken": self.broken,
            "error": self.error,
            "messages": self.messages,
        }


async def open_one(held: Held, ctx: ssl.SSLContext, timeout: float) -> None:
    flow = held.flow
    try:
        sock = _bound_socket(flow["src"], int(flow["sport"]))
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.sock_connect(sock, (flow["dst"], int(flow["dport"]))), timeout
            )
        except BaseException:
            sock.close()
            raise
        reader, held.writer = await asyncio.wait_for(
            asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=flow["server_name"]),
            timeout,
        )
        held.reader = reader
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line.endswith(b"\n") or len(line) > MAX_LINE:
            raise ConnectionError(f"no answer line from the backend (got {line[:80]!r})")
        held.line = line.decode(errors="replace").strip()
        held.ok, held.opened = True, time.monotonic()
    except TimeoutError:
        held.error = f"open: timeout after {timeout:g}s"
    except (OSError, ssl.SSLError, ConnectionError) as exc:
        held.error = f"open: {type(exc).__name__}: {exc}"


async def exchange(
    held: Held, interval: float, stall: float, offset: float, stopping: asyncio.Event
) -> None:
    """Ping-echo until the connection breaks or `stopping` is set. (Not by cancelling alone:
    Python 3.11's wait_for swallows a cancellation that meets its inner future finishing,
    and at hundreds of exchanges a second some loops would never end.)"""
    assert held.reader is not None and held.writer is not None
    await asyncio.sleep(offset)
    seq = 0
    while not stopping.is_set():
        seq += 1
        message = f"ping {seq}\n".encode()
        sent = time.monotonic()
        try:
            held.writer.write(message)
            await asyncio.wait_for(held.writer.drain(), stall)
            echoed = await asyncio.wait_for(held.reader.readline(), stall)
            if echoed != message:
                raise ConnectionError(f"unexpected echo {echoed[:40]!r}")
        except TimeoutError:
            held.broken, held.error = sent, f"no echo within {stall:g}s"
            return
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            held.broken, held.error = time.monotonic(), f"{type(exc).__name__}: {exc}"
            return
        held.messages += 1
        await asyncio.sleep(max(0.0, sent + interval - time.monotonic()))


async def hold(
    flows: list[dict],
    ctx: ssl.SSLContext,
    interval: float,
    stall: float,
    timeout: float,
    ready_file: Path,
    stop_file: Path,
) -> list[Held]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    helds = [Held(i, f) for i, f in enumerate(flows)]
    slots = asyncio.Semaphore(OPEN_CONCURRENCY)
    exchanges: list[asyncio.Task] = []
    stopping = asyncio.Event()

    async def start(held: Held) -> None:
        async with slots:
            await open_one(held, ctx, timeout)
        if held.ok:
            offset = interval * (held.i % 97) / 97
            exchanges.append(asyncio.create_task(exchange(held, interval, stall, offset, stopping)))

    await asyncio.gather(*(start(h) for h in helds))
    opened = sum(h.ok for h in helds)
    # Atomically: the parent polls for the file and reads it at once.
    partial = ready_file.with_name(ready_file.name + ".tmp")
    reasons = collections.Counter(h.error for h in helds if not h.ok and h.error)
    partial.write_text(
        json.dumps({"opened": opened, "failed": len(helds) - opened, "reasons": dict(reasons)})
    )
    partial.rename(ready_file)
    while not stop.is_set() and not stop_file.exists():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    stopping.set()
    for task in exchanges:
        task.cancel()
    if exchanges:
        await asyncio.wait(exchanges, timeout=stall + 1)
    await asyncio.gather(*(goodbye(h) for h in helds), return_exceptions=True)
    return helds


async def _until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(MAX_LINE):
        pass


async def goodbye(held: Held) -> None:
    if held.writer is None:
        return
    try:
        if held.broken is None and held.reader is not None:
            held.writer.write(b"bye\n")
            with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
                await asyncio.wait_for(_until_eof(held.reader), 2.0)  # the backend closes first
    finally:
        held.writer.close()
        with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
            await asyncio.wait_for(held.writer.wait_closed(), 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anycast_ctl.lab.programs.longlived_client")
    parser.add_argument("--ca", required=True, type=Path)
    parser.add_argument("--flows", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--ready-file", required=True, type=Path)
    parser.add_argument("--stop-file", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--stall", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--cert", type=Path, help="the client's certificate, for mTLS VIPs")
    parser.add_argument("--key", type=Path)
    args = parser.parse_args(argv)
    try:
        flows = json.loads(args.flows.read_text())
        ctx = client_context(args.ca, args.cert, args.key)
        ctx.set_alpn_protocols([HOLD_ALPN])
    except (ValueError, OSError, ssl.SSLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not (args.interval > 0 and args.stall > 0 and args.timeout > 0):
        print("error: --interval, --stall and --timeout must be positive", file=sys.stderr)
        return 2
    helds = asyncio.run(
        hold(flows, ctx, args.interval, args.stall, args.timeout, args.ready_file, args.stop_file)
    )
    args.out.write_text(json.dumps([h.result() for h in helds]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
