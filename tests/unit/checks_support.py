"""Test helpers for the health checks: throwaway TLS material and tiny asyncio servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVICE_NAME = "svc.test"
DAY = dt.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _make_ca(directory: Path, label: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"test CA {label}"))
        .issuer_name(_name(f"test CA {label}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / f"ca-{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _make_leaf(
    directory: Path, label: str, ca_key, ca_cert, not_before, not_after
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(SERVICE_NAME))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(SERVICE_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{label}.pem", directory / f"{label}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA the checks trust
    leaves: dict[str, tuple[Path, Path]]  # label -> (cert, key)
    not_after: dict[str, dt.datetime]

    def server_context(self, label: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self.leaves[label])
        return context


def make_tls_files(directory: Path) -> TlsFiles:
    """good: 30 days left; near: 5 days; expired: ended yesterday; untrusted: other CA."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca_key, ca_cert, ca_path = _make_ca(directory, "trusted")
    other_key, other_cert, _ = _make_ca(directory, "other")
    plan = {
        "good": (ca_key, ca_cert, now - DAY, now + 30 * DAY),
        "near": (ca_key, ca_cert, now - DAY, now + 5 * DAY),
        "expired": (ca_key, ca_cert, now - 10 * DAY, now - DAY),
        "untrusted": (other_key, other_cert, now - DAY, now + 30 * DAY),
    }
    leaves = {label: _make_leaf(directory, label, *args) for label, args in plan.items()}
    return TlsFiles(ca_path, leaves, {label: args[3] for label, args in plan.items()})


class Server:
    """An asyncio server on 127.0.0.1, ephemeral port; use as `async with Server(handler) as s`.

    On exit it drops every connection and waits for the handlers to end.
    """

    def __init__(self, handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections: list[tuple[asyncio.StreamWriter, asyncio.Task]] = []

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback that makes its own task: with TLS a connection can complete its
        # handshake after the test is over, and asyncio.run then cancels that task quietly.
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self.connections.append((writer, task))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.handler(reader, writer)
        except ConnectionError:
            pass  # the check hung up first; that is its right
        finally:
            writer.transport.abort()

    async def __aenter__(self) -> Server:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_refused_handshakes)
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None  # set by __aenter__
        self.server.close()
        for writer, _ in self.connections:
            writer.transport.abort()  # a handler parked on a read sees EOF and ends
        await asyncio.gather(*(task for _, task in self.connections), return_exceptions=True)


def _quiet_refused_handshakes(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The checks under test reject bad certificates: the server side failing is expected."""
    if isinstance(context.get("exception"), (ssl.SSLError, ConnectionError)):
        return
    loop.default_exception_handler(context)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never answer (until the connection goes away): the check must time out."""
    await reader.read()


def closed_port() -> tuple[int, object]:
    """A port nothing listens on, kept reserved: a bound, non-listening socket refuses connects.

    Returns the port and the socket; keep the socket alive (and close it) in the test.
    """
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1], sock
