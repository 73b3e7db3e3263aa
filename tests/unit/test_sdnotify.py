"""systemd's notify protocol against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import socket

import pytest

from anycast_ctl.agent.sdnotify import Notifier, message, socket_address, watchdog_interval


@pytest.fixture
def systemd(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(1)
    yield sock, str(path)
    sock.close()


def received(sock) -> list[bytes]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096))
    except BlockingIOError:
        return out
    finally:
        sock.setblocking(True)


def test_ready_status_and_stopping_arrive_as_datagrams(systemd):
    sock, path = systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready("1 of 1 VIPs announced")
    assert sock.recv(4096) == b"READY=1\nSTATUS=1 of 1 VIPs announced"
    notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_watchdog_is_fed_at_half_the_watchdog_period(systemd):
    sock, path = systemd
    now = [100.0]
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}, clock=lambda: now[0])
    assert notifier.interval == 1.0
    for t in (100.0, 100.2, 100.9, 101.0, 101.5, 102.1):
        now[0] = t
        notifier.watchdog()
    assert received(sock) == [b"WATCHDOG=1"] * 3  # at 100.0, 101.0, 102.1


def test_without_notify_socket_nothing_is_sent_and_nothing_fails():
    notifier = Notifier({})
    assert not notifier.enabled and notifier.interval is None
    notifier.ready("x")
    notifier.watchdog()
    assert notifier.send(b"READY=1") is False


def test_an_absent_systemd_is_logged_not_raised(tmp_path, caplog):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert notifier.send(b"READY=1") is False
    assert "cannot notify systemd" in caplog.text


@pytest.mark.parametrize(
    "value, address",
    [
        (None, None),
        ("", None),
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@/org/freedesktop/systemd1/notify/1", b"\0/org/freedesktop/systemd1/notify/1"),
        ("vsock:2:1234", None),
    ],
)
def test_socket_address(value, address):
    assert socket_address(value) == address


def test_abstract_socket_works(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"anycast-ctl-test-{id(sock)}"
    sock.bind(b"\0" + name.encode())
    sock.settimeout(1)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert sock.recv(4096).startswith(b"READY=1")
    finally:
        sock.close()


@pytest.mark.parametrize(
    "env, interval",
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "x"}, None),
        ({"WATCHDOG_USEC": "5000000"}, 2.5),
    ],
)
def test_watchdog_interval(env, interval):
    assert watchdog_interval(env) == interval


def test_a_newline_cannot_forge_a_field():
    with pytest.raises(ValueError):
        message(STATUS="ok\nREADY=1")
