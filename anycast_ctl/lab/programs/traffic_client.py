"""The lab's traffic generator, run inside a client's namespace by `lab traffic`.

    python -m anycast_ctl.lab.programs.traffic_client --ca ca.pem [--concurrency 64] \
        [--timeout 5] [--cert client.pem --key client.key] < flows.json

stdin: a JSON list of flows, each {"src", "sport", "dst", "dport", "server_name"}.
stdout: a JSON list, one result per flow in the same order:
    {"src", "sport", "dst", "dport", "ok", "line", "error", "reason", "seconds"}

`reason` says why a flow failed: "closed" (the connection was closed or reset before the TLS
handshake finished: the LB refused it), "tls-alert" (the backend ended the handshake with an
alert, e.g. no client certificate), "certificate" (the backend's did not verify), "refused"
(nothing listening), "timeout", or "error"; "ok" otherwise. With --cert/--key the client
presents that certificate when a backend asks for one.

Every connection binds its own (src, sport) before connecting, so the 5-tuple, and hence every
router's ECMP choice, is known in advance. The backend's certificate is verified against the
lab CA and the VIP's TLS name: a connection that reaches a backend without a valid certificate
is a failure, not a data point. Reads the backend's one line, then waits for its close (the
backend closes first, so no TIME_WAIT is left here and the same flows can be sent again).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import ssl
import sys
import time
from pathlib import Path

MAX_LINE = 512
IP_FREEBIND = 15  # linux/in.h; not in every Python's socket module


def client_context(
    ca_file: Path, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx  # CERT_REQUIRED and check_hostname are the defaults


def failure_reason(exc: BaseException) -> str:
    """Why a flow failed, from the exception that ended it (see the module's docstring)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ssl.SSLError) and "ALERT" in str(getattr(exc, "reason", "") or "").upper():
        return "tls-alert"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ssl.SSLEOFError):
        return "closed"
    if isinstance(exc, ssl.SSLError) and "EOF" in str(exc).upper():
        return "closed"
    return "error"


def _bound_socket(src: str, sport: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A client owns its whole prefix through a local route ("AnyIP"); IPv6 binds only to
        # interface addresses unless the socket may bind freely.
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.bind((src, sport))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def one_flow(flow: dict, ctx: ssl.SSLContext, timeout: float) -> dict:
    result = {k: flow[k] for k in ("src", "sport", "dst", "dport")} | {
        "ok": False,
        "line": None,
        "error": None,
        "reason": "error",
    }
    started = time.monotonic()
    writer = None
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
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=flow["server_name"]),
            timeout,
        )
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ssl.SSLEOFError("closed before the backend's answer")
        if not line.endswith(b"\n") or len(line) > MAX_LINE:
            raise ConnectionError(f"no answer line from the backend (got {line[:80]!r})")
        result["line"] = line.decode(errors="replace").strip()
        await asyncio.wait_for(reader.read(MAX_LINE), timeout)  # the backend's close
        result["ok"], result["reason"] = True, "ok"
    except TimeoutError as exc:
        result["error"], result["reason"] = f"timeout after {timeout:g}s", failure_reason(exc)
    except ssl.SSLCertVerificationError as exc:
        result["error"], result["reason"] = f"certificate: {exc.verify_message}", "certificate"
    except (OSError, ssl.SSLError, ConnectionError) as exc:
        result["error"], result["reason"] = f"{type(exc).__name__}: {exc}", failure_reason(exc)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
    result["seconds"] = round(time.monotonic() - started, 6)
    return result


async def run_flows(
    flows: list[dict], ctx: ssl.SSLContext, concurrency: int, timeout: float
) -> list[dict]:
    slots = asyncio.Semaphore(concurrency)

    async def limited(flow: dict) -> dict:
        async with slots:
            return await one_flow(flow, ctx, timeout)

    return list(await asyncio.gather(*(limited(f) for f in flows)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anycast_ctl.lab.programs.traffic_client")
    parser.add_argument("--ca", required=True, type=Path)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--cert", type=Path, help="client certificate (PEM), for mTLS")
    parser.add_argument("--key", type=Path, help="its private key")
    args = parser.parse_args(argv)
    try:
        flows = json.load(sys.stdin)
        ctx = client_context(args.ca, args.cert, args.key)
    except (ValueError, OSError, ssl.SSLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = asyncio.run(run_flows(flows, ctx, max(1, args.concurrency), args.timeout))
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
