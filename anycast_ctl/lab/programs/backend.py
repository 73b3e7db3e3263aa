"""A lab backend: a tiny TLS server that tells each client who it is and who connected.

    python -m anycast_ctl.lab.programs.backend --name be1 --cert be1.pem --key be1.key \
        --listen 100.64.255.5:443 [--ready-file PATH]

Per connection, after the TLS handshake, it writes one line and closes:

    backend=be1 peer=100.64.0.9:40112

The peer is the address the connection came from. HAProxy on an LB node connects to the
backend from its own link address, so the client learns which LB carried its connection.
Bounded: handshakes and writes have deadlines, at most MAX_CLIENTS connections at a time.
Exits 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import ssl
import sys
from pathlib import Path

HANDSHAKE_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0
MAX_CLIENTS = 1024


def parse_listen(text: str) -> tuple[str, int]:
    """'1.2.3.4:443' or '[fd00::1]:443' -> (host, port); ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: expected ADDRESS:PORT")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    ipaddress.ip_address(host)
    return host, int(port)


def answer_line(name: str, peer: tuple) -> bytes:
    host, port = peer[0], peer[1]
    return f"backend={name} peer={host}:{port}\n".encode()


def parse_answer(line: str) -> dict[str, str]:
    """'backend=be1 peer=1.2.3.4:5' -> {'backend': 'be1', 'peer': '1.2.3.4:5'}; {} if malformed."""
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    return fields if {"backend", "peer"} <= fields.keys() else {}


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(
    name: str, host: str, port: int, ctx: ssl.SSLContext, ready_file: Path | None
) -> None:
    slots = asyncio.Semaphore(MAX_CLIENTS)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with slots:
            try:
                writer.write(answer_line(name, writer.get_extra_info("peername")))
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
            except (TimeoutError, OSError, ssl.SSLError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
                    await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT)

    server = await asyncio.start_server(
        handle,
        host,
        port,
        ssl=ctx,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
        backlog=1024,
        reuse_address=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready_file:
        ready_file.write_text(f"{host}:{port}\n")
    print(f"backend {name} listening on {host}:{port}", flush=True)
    async with server:
        await stop.wait()
    print(f"backend {name} stopping", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m anycast_ctl.lab.programs.backend", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--name", required=True)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT")
    parser.add_argument("--ready-file", type=Path, help="written once the socket listens")
    args = parser.parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        ctx = server_context(args.cert, args.key)
    except (ValueError, OSError, ssl.SSLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(args.name, host, port, ctx, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
