"""systemd's notify protocol (sd_notify(3)), spoken directly: one datagram per message.

The protocol is a few `KEY=VALUE` lines sent to the AF_UNIX datagram socket named in
$NOTIFY_SOCKET (a leading `@` means the abstract namespace). That is small enough that a
dependency (python-systemd needs libsystemd and a compiler; sdnotify is unmaintained) would
cost more than these lines.

The agent is ExaBGP's child, not the service's main process: the unit says
`NotifyAccess=all` so systemd takes READY=1 and WATCHDOG=1 from it. $WATCHDOG_PID names
ExaBGP (the main process) and is deliberately not required to be our pid.
Sending never raises: systemd being away must not take the agent down.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def socket_address(value: str | None) -> str | bytes | None:
    """$NOTIFY_SOCKET -> an address for sendto (None: not under systemd's notify)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock and other forms: not for a service on this host


def watchdog_interval(env: Mapping[str, str]) -> float | None:
    """How often to send WATCHDOG=1: half of $WATCHDOG_USEC, as sd_watchdog_enabled advises."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


def message(**fields: str | int) -> bytes:
    """READY=1, STATUS=..., one line each; newlines in a value would forge another field."""
    lines = []
    for key, value in fields.items():
        text = str(value)
        if "\n" in text:
            raise ValueError(f"newline in sd_notify field {key}")
        lines.append(f"{key}={text}")
    return "\n".join(lines).encode()


class Notifier:
    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        env = os.environ if env is None else env
        self.address = socket_address(env.get("NOTIFY_SOCKET"))
        self.interval = watchdog_interval(env) if self.address is not None else None
        self._clock = clock
        self._last_watchdog: float | None = None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, data: bytes) -> bool:
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(data, self.address)
            return True
        except OSError as exc:
            log.warning("cannot notify systemd at %r: %s", self.address, exc)
            return False

    def ready(self, status: str) -> None:
        self.send(message(READY=1, STATUS=status))

    def status(self, status: str) -> None:
        self.send(message(STATUS=status))

    def watchdog(self) -> None:
        """Feed the watchdog, at most every `interval` (the caller may call it every tick)."""
        if self.interval is None:
            return
        now = self._clock()
        if self._last_watchdog is not None and now - self._last_watchdog < self.interval:
            return
        self._last_watchdog = now
        self.send(b"WATCHDOG=1")

    def stopping(self) -> None:
        self.send(b"STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
