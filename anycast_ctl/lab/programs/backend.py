"""A lab backend: a tiny TLS server behind the LB nodes that tells each client what it saw.

    python -m anycast_ctl.lab.programs.backend --name be1 --cert be1.pem --key be1.key \
        --listen 100.64.255.5:443 --proxy-from 100.64.1.2 [--proxy-from ...] \
        [--client-ca ca.pem] [--ready-file PATH]

Every connection must open with a PROXY protocol v2 header (HAProxy's `send-proxy-v2`) and come
from an address given with --proxy-from (the LB nodes'); anything else is closed before TLS.
The header says who the client is (the LB's own connection hides it) and carries the LB's
connection id (TLV 0x05, `proxy-v2-options unique-id`). A LOCAL header is HAProxy's health
check: closed without TLS. Then the TLS handshake (with --client-ca the client must present a
certificate that CA issued, else the handshake fails with a TLS alert), one line, close:

    backend=be1 peer=100.64.0.9:40112 client=198.18.1.7:20001 id=lb1-3A9F-692E1B5C-1F

`peer` is the LB that carried the connection, `client` the client's own address as the PROXY
header gave it, `id` the connection id in the LB's log. Each connection is also logged on
stdout, accepted or not, with the same fields.

A client that offers the ALPN protocol `anycast-hold` (lab/programs/longlived_client.py) gets
the same line and then an echo: every line it sends comes back, until it sends `bye` (the
backend then closes first, so the client's port is not left in TIME_WAIT), closes, or stays
silent for IDLE_TIMEOUT. HAProxy passes TLS through untouched, so the ALPN choice is the
client's and the backend's alone; clients that offer no ALPN are answered as before.
Bounded: header, handshake and write deadlines, at most MAX_CLIENTS connections at a time.
Exits 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import ssl
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

HEADER_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0
MAX_CLIENTS = 1024
HOLD_ALPN = "anycast-hold"
IDLE_TIMEOUT = 10.0  # a held connection whose client went away (reset elsewhere) frees its slot
MAX_ECHO_LINE = 256


def parse_listen(text: str) -> tuple[str, int]:
    """'1.2.3.4:443' or '[fd00::1]:443' -> (host, port); ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: expected ADDRESS:PORT")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    ipaddress.ip_address(host)
    return host, int(port)


# ---------------------------------------------------------------- PROXY protocol v2 (pure)
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PROXY_V2_HEADER = 16  # signature, version/command, family/protocol, length
PP2_TYPE_UNIQUE_ID = 0x05
MAX_PROXY_BODY = 1024  # addresses and the TLVs HAProxy sends fit well inside


@dataclass(frozen=True)
class ProxyHeader:
    command: str  # "PROXY" (a relayed connection) or "LOCAL" (the proxy's own, e.g. a check)
    client: str | None  # "198.18.1.7:20001" ("[2001:db8::7]:20001") for PROXY over TCP
    destination: str | None  # the VIP the client reached
    unique_id: str | None


def proxy_body_length(head: bytes) -> int:
    """Length of the rest of the header, from its first 16 bytes; ValueError if not PROXY v2."""
    if len(head) != PROXY_V2_HEADER or head[:12] != PROXY_V2_SIGNATURE:
        raise ValueError("no PROXY protocol v2 header")
    if head[12] >> 4 != 2:
        raise ValueError(f"PROXY protocol version {head[12] >> 4}, expected 2")
    length = struct.unpack("!H", head[14:16])[0]
    if length > MAX_PROXY_BODY:
        raise ValueError(f"PROXY v2 header of {length} bytes is too long")
    return length


def _endpoint(raw: bytes, port: int) -> str:
    address = ipaddress.ip_address(raw)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def parse_proxy_v2(head: bytes, body: bytes) -> ProxyHeader:
    """The header's meaning (addresses, unique id); ValueError for anything malformed."""
    proxy_body_length(head)
    command = {0: "LOCAL", 1: "PROXY"}.get(head[12] & 0x0F)
    if command is None:
        raise ValueError(f"PROXY v2 command {head[12] & 0x0F} is unknown")
    family, protocol = head[13] >> 4, head[13] & 0x0F
    client = destination = None
    sizes = {1: 4, 2: 16}  # AF_INET, AF_INET6
    if command == "PROXY" and family in sizes and protocol == 1:  # over TCP (STREAM)
        n = sizes[family]
        if len(body) < 2 * n + 4:
            raise ValueError("PROXY v2 addresses are cut short")
        sport, dport = struct.unpack("!HH", body[2 * n : 2 * n + 4])
        client, destination = _endpoint(body[:n], sport), _endpoint(body[n : 2 * n], dport)
        tlvs = body[2 * n + 4 :]
    elif command == "PROXY":
        raise ValueError(f"PROXY v2 family {family} / protocol {protocol} is not TCP over IP")
    else:
        tlvs = b""  # a LOCAL header's address block is to be ignored (the spec)
    unique_id = None
    while tlvs:
        if len(tlvs) < 3:
            raise ValueError("PROXY v2 TLV is cut short")
        kind, size = tlvs[0], struct.unpack("!H", tlvs[1:3])[0]
        value, tlvs = tlvs[3 : 3 + size], tlvs[3 + size :]
        if len(value) != size:
            raise ValueError("PROXY v2 TLV value is cut short")
        if kind == PP2_TYPE_UNIQUE_ID:
            unique_id = value.decode("ascii", errors="replace")
    return ProxyHeader(command, client, destination, unique_id)


def answer_line(name: str, peer: tuple, header: ProxyHeader) -> bytes:
    host, port = peer[0], peer[1]
    return (
        f"backend={name} peer={host}:{port} client={header.client} id={header.unique_id}\n"
    ).encode()


def parse_answer(line: str) -> dict[str, str]:
    """'backend=be1 peer=1.2.3.4:5 client=... id=...' -> its fields; {} if malformed
    (backend and peer are required)."""
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    return fields if {"backend", "peer"} <= fields.keys() else {}


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:  # client_certificates: required
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca))
    ctx.set_alpn_protocols([HOLD_ALPN])
    return ctx


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    # recv, never more than asked: what follows the header (the ClientHello) stays in the
    # kernel's buffer for the TLS layer
    data = b""
    while len(data) < n:
        chunk = await loop.sock_recv(sock, n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} header bytes")
        data += chunk
    return data


@dataclass
class TlsSession:
    """A server-side TLS connection over `sock`, driven by hand through memory BIOs."""

    loop: asyncio.AbstractEventLoop
    sock: socket.socket
    tls: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO

    async def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            await self.loop.sock_sendall(self.sock, data)

    async def feed(self) -> None:
        data = await self.loop.sock_recv(self.sock, 65536)
        if not data:
            raise ConnectionError("the client closed")
        self.incoming.write(data)

    async def close_notify(self) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.unwrap()  # our close_notify; the client's is not waited for
        await self.flush()


async def echo(session: TlsSession) -> None:
    """Send every line back until `bye`, the client's close, an overlong line, or
    IDLE_TIMEOUT of silence."""
    pending = b""
    while True:
        try:
            data = session.tls.read(MAX_ECHO_LINE)
        except ssl.SSLWantReadError:
            await asyncio.wait_for(session.feed(), IDLE_TIMEOUT)
            continue
        except ssl.SSLZeroReturnError:
            return
        if not data:
            # The client's close_notify: an SSLObject reports it as b"" (every read after it,
            # too), not as SSLZeroReturnError. Reading on would spin without ever yielding to
            # the event loop, and the whole backend would stop answering.
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line == b"bye":
                return
            session.tls.write(line + b"\n")
            await asyncio.wait_for(session.flush(), WRITE_TIMEOUT)
        if len(pending) > MAX_ECHO_LINE:
            return


async def tls_answer(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, ctx: ssl.SSLContext, line: bytes
) -> TlsSession:
    """TLS handshake over `sock` (memory BIOs), then `line`; the caller closes (after an
    echo, if the client asked for one).

    Driven by hand rather than by asyncio's SSL transport so that a failed handshake still
    sends its alert (asyncio aborts the connection without flushing it): a client without the
    certificate a `client_certificates: required` VIP needs sees "certificate required".
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=True)

    async def flush() -> None:
        data = outgoing.read()
        if data:
            await loop.sock_sendall(sock, data)

    async def feed() -> None:
        data = await loop.sock_recv(sock, 65536)
        if not data:
            raise ConnectionError("the client closed during the handshake")
        incoming.write(data)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            await flush()
            await feed()
        except ssl.SSLError:
            with contextlib.suppress(OSError):
                await flush()  # the alert
            raise
    await flush()
    tls.write(line)
    await flush()
    return TlsSession(loop, sock, tls, incoming, outgoing)


def log(**fields: object) -> None:
    print(" ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


async def handle(
    name: str, sock: socket.socket, peer: tuple, ctx: ssl.SSLContext, proxies: frozenset[str]
) -> None:
    loop = asyncio.get_running_loop()
    via = f"{peer[0]}:{peer[1]}"
    try:
        if str(ipaddress.ip_address(peer[0])) not in proxies:
            log(conn="refused", via=via, reason="not an LB node")
            return
        head = await asyncio.wait_for(_recv_exactly(loop, sock, PROXY_V2_HEADER), HEADER_TIMEOUT)
        body = await asyncio.wait_for(
            _recv_exactly(loop, sock, proxy_body_length(head)), HEADER_TIMEOUT
        )
        header = parse_proxy_v2(head, body)
        if header.command == "LOCAL":
            return  # the LB's health check
        session = await asyncio.wait_for(
            tls_answer(loop, sock, ctx, answer_line(name, peer, header)),
            HANDSHAKE_TIMEOUT + WRITE_TIMEOUT,
        )
        log(conn="ok", id=header.unique_id, client=header.client, vip=header.destination, via=via)
        if session.tls.selected_alpn_protocol() == HOLD_ALPN:
            await echo(session)
        await asyncio.wait_for(session.close_notify(), WRITE_TIMEOUT)
    except (TimeoutError, OSError, ssl.SSLError, ValueError, ConnectionError) as exc:
        log(conn="failed", via=via, reason=f"{type(exc).__name__}: {exc}".replace(" ", "_"))
    finally:
        sock.close()


async def serve(
    name: str,
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    proxies: frozenset[str],
    ready_file: Path | None,
) -> None:
    slots = asyncio.Semaphore(MAX_CLIENTS)
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=1024)
    listener.setblocking(False)
    tasks: set[asyncio.Task[None]] = set()

    async def limited(sock: socket.socket, peer: tuple) -> None:
        async with slots:
            await handle(name, sock, peer, ctx, proxies)

    async def accept() -> None:
        while True:
            sock, peer = await loop.sock_accept(listener)
            sock.setblocking(False)
            task = asyncio.create_task(limited(sock, peer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready_file:
        ready_file.write_text(f"{host}:{port}\n")
    print(f"backend {name} listening on {host}:{port}", flush=True)
    acceptor = asyncio.create_task(accept())
    await stop.wait()
    acceptor.cancel()
    listener.close()
    print(f"backend {name} stopping", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m anycast_ctl.lab.programs.backend", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--name", required=True)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT")
    parser.add_argument(
        "--proxy-from",
        action="append",
        default=[],
        help="an LB node address allowed to connect (with a PROXY v2 header); repeat",
    )
    parser.add_argument("--client-ca", type=Path, help="require client certificates of this CA")
    parser.add_argument("--ready-file", type=Path, help="written once the socket listens")
    args = parser.parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        proxies = frozenset(str(ipaddress.ip_address(a)) for a in args.proxy_from)
        if not proxies:
            raise ValueError("--proxy-from: at least one LB node address")
        ctx = server_context(args.cert, args.key, args.client_ca)
    except (ValueError, OSError, ssl.SSLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(args.name, host, port, ctx, proxies, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
