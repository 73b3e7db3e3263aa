"""Health check latency on loopback, and how precisely the hard timeout holds.

Prints median / p99 latency (as run_check measures it) per check kind against local servers,
and the overshoot of run_check past its timeout against a peer that never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from anycast_ctl.agent.checks import build_check, run_check
from anycast_ctl.config import node

RUNS = 200
QUICK_RUNS = 40  # --quick: enough for a median, not for a p99 worth quoting
STAT_HEADER = b"# pxname,svname,status,type\n"
STAT_ROWS = {
    b"fe": b"fe,FRONTEND,OPEN,0\n",
    b"be": b"be,s1,UP,2\nbe,s2,UP,2\nbe,BACKEND,UP,1\n",
}
PROMPT = b"\n> "


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bench.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def _http(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()
    writer.close()


async def _hold(reader, writer):
    with contextlib.suppress(ConnectionError):
        await reader.read()
    writer.close()


def quiet(handler):
    """A plain connection callback that makes its own task: asyncio.run cancels leftovers."""

    def accept(reader, writer):
        asyncio.get_running_loop().create_task(handler(reader, writer))

    return accept


async def _stat(reader, writer):
    """HAProxy's runtime API as the agent's check uses it: one interactive (`prompt`)
    connection kept open, each command of a line (split on ";") answered, then the prompt."""
    while line := await reader.readline():
        for command in line.strip().split(b";"):
            words = command.split()
            if words[:2] == [b"show", b"info"]:
                writer.write(b"Name: HAProxy\nStopping: 0\n")
            elif words[:2] == [b"show", b"stat"]:
                wanted = [words[2]] if len(words) > 2 and words[2] != b"-1" else list(STAT_ROWS)
                writer.write(STAT_HEADER + b"".join(STAT_ROWS.get(p, b"") for p in wanted))
            writer.write(PROMPT)
        await writer.drain()
    writer.close()


async def measure(check, runs=RUNS, warmup=20) -> list[float]:
    for _ in range(warmup):
        await run_check(check, 2.0)
    latencies = []
    for _ in range(runs):
        result = await run_check(check, 2.0)
        assert result.ok, result
        latencies.append(result.latency)
    return latencies


def report(label: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    median = statistics.median(ordered)
    print(
        f"{label:<34} median {median * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms   (n={len(ordered)})"
    )


async def run(directory: Path, runs: int = RUNS) -> None:
    import ssl

    cert, key = self_signed(directory)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    http = await asyncio.start_server(_http, "127.0.0.1", 0)
    https = await asyncio.start_server(_http, "127.0.0.1", 0, ssl=server_tls)
    tls = await asyncio.start_server(quiet(_hold), "127.0.0.1", 0, ssl=server_tls)
    silent = await asyncio.start_server(quiet(_hold), "127.0.0.1", 0)
    stat = await asyncio.start_unix_server(quiet(_stat), str(directory / "stat.sock"))
    port = {
        name: s.sockets[0].getsockname()[1]
        for name, s in {"http": http, "https": https, "tls": tls, "silent": silent}.items()
    }
    specs: dict[str, node.Check] = {
        "tcp connect": node.TcpCheck(type="tcp", port=port["silent"]),
        "http GET": node.HttpCheck(
            type="http", url=f"http://127.0.0.1:{port['http']}/", body_regex="ok"
        ),
        "https GET (verified)": node.HttpCheck(
            type="http",
            url=f"https://127.0.0.1:{port['https']}/",
            ca_file=cert,
            server_name="bench.test",
        ),
        "tls handshake + expiry": node.TlsCheck(
            type="tls", port=port["tls"], server_name="bench.test", ca_file=cert
        ),
        "haproxy show stat (unix socket)": node.HaproxyCheck(
            type="haproxy", socket=directory / "stat.sock", frontend="fe", backend="be"
        ),
        "exec /bin/true": node.ExecCheck(type="exec", command=["/bin/true"]),
    }
    try:
        for label, spec in specs.items():
            report(label, await measure(build_check("b", spec), runs, warmup=min(20, runs)))
        print()
        hanging: dict[str, node.Check] = {
            "exec sleep 10": node.ExecCheck(type="exec", command=["sleep", "10"]),
            "http, peer silent": node.HttpCheck(
                type="http", url=f"http://127.0.0.1:{port['silent']}/"
            ),
        }
        for name, spec in hanging.items():
            check = build_check("silent", spec)
            for timeout in (0.1, 0.5):
                overshoots = []
                for _ in range(10 if runs == RUNS else 3):
                    result = await run_check(check, timeout)
                    assert not result.ok
                    overshoots.append(result.latency - timeout)
                print(
                    f"timeout {timeout:.1f}s, {name:<18} overshoot median"
                    f" {statistics.median(overshoots) * 1e3:6.2f} ms"
                    f"   max {max(overshoots) * 1e3:6.2f} ms"
                )
    finally:
        for server in (http, https, tls, silent, stat):
            server.close()


def main(quick: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-checks-") as directory:
        started = time.perf_counter()
        asyncio.run(run(Path(directory), QUICK_RUNS if quick else RUNS))
        print(f"(all checks on 127.0.0.1, one at a time, {time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()
