"""The lab backend as a real process on loopback (no root): what a held connection's client
may do must never stop it answering the others."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from anycast_ctl.lab.net.host_ports import free_port
from anycast_ctl.lab.nodes import pki
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.programs.backend import HOLD_ALPN, PROXY_V2_SIGNATURE, parse_answer


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    now = dt.datetime.now(dt.UTC)
    ca, ca_key, ca_cert = pki.make_ca("backend-test", now)
    issued = pki.issue(ca_key, ca_cert, "be1", ["be1.test"], ["127.0.0.1"], now)
    (tmp_path / "be1.pem").write_bytes(issued.cert_pem)
    (tmp_path / "be1.key").write_bytes(issued.key_pem)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    port, ready = free_port(), tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "anycast_ctl.lab.programs.backend", "--name", "be1"]
        + ["--cert", str(tmp_path / "be1.pem"), "--key", str(tmp_path / "be1.key")]
        + ["--listen", f"127.0.0.1:{port}", "--proxy-from", "127.0.0.1"]
        + ["--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: ready.exists() or None, 15, what="the backend to listen")
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        ctx.set_alpn_protocols([HOLD_ALPN])
        yield port, ctx
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # a spinning backend never runs its SIGTERM handler
            proc.kill()
            proc.wait(10)


def _proxy_header(client_port: int, port: int) -> bytes:
    body = socket.inet_aton("198.18.1.7") + socket.inet_aton("127.0.0.1")
    body += struct.pack("!HH", client_port, port)
    return PROXY_V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def _held(port: int, ctx: ssl.SSLContext, client_port: int) -> ssl.SSLSocket:
    """A held connection, past the backend's answer line."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.sendall(_proxy_header(client_port, port))
    tls = ctx.wrap_socket(raw, server_hostname="be1.test")
    assert parse_answer(tls.recv(512).decode())["backend"] == "be1"
    return tls


def test_a_client_close_notify_ends_its_echo_and_the_backend_answers_the_next(backend):
    # The failover bench's baseline runs: a held connection whose client gave up during a
    # HAProxy hang closes with close_notify, delivered once HAProxy runs again. The backend
    # spun on it (an SSLObject reads b"" after close_notify) and answered nobody after.
    port, ctx = backend
    first = _held(port, ctx, 20001)
    first.sendall(b"ping 1\n")
    assert first.recv(64) == b"ping 1\n"
    first.settimeout(3)
    with contextlib.suppress(OSError):  # the backend's own close_notify may or may not come
        first.unwrap()  # close_notify, TCP left open: only TLS says goodbye
    second = _held(port, ctx, 20002)
    second.sendall(b"ping 2\n")
    assert second.recv(64) == b"ping 2\n"
    second.sendall(b"bye\n")
    second.close()
    first.close()
