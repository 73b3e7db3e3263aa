"""TCP connect check: a completed handshake is healthy."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Coroutine
from typing import Any

from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.config.node import TcpCheck


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_settled(sock: socket.socket) -> bool:
    """After a non-blocking connect: True once it is connected, False while the handshake is
    still on; raises the connect's error (refused, unreachable) once it failed."""
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))
    try:
        sock.getpeername()
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            return False
        raise
    return True


class TcpChecker:
    def __init__(self, name: str, spec: TcpCheck) -> None:
        self.name = name
        self.host = spec.host
        self.port = spec.port
        self.target = host_port(spec.host, spec.port)
        self._family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        self._ok = Outcome.ok(f"connected to {self.target}")

    async def probe(self) -> Outcome:
        begun = self.probe_now()
        return begun if isinstance(begun, Outcome) else await begun

    def probe_now(self) -> Outcome | Coroutine[Any, Any, Outcome]:
        """Connect now. To a local address (the usual case: HAProxy on this node) the kernel
        has finished the handshake, or refused it, by the time `connect()` returns: the
        outcome at once, with no event-loop wait and no epoll registration to add and
        remove. Else the coroutine that waits for the handshake (it owns the socket)."""
        # Refused/unreachable raise OSError (hard, via classify_error); a silent peer
        # runs into the caller's timeout (soft). A bare non-blocking socket: no transport or
        # streams to build for a connection we close at once (this runs every tick).
        sock = socket.socket(self._family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        settled = True
        try:
            error = sock.connect_ex((self.host, self.port))
            if error not in (0, errno.EINPROGRESS):
                raise OSError(error, os.strerror(error))
            settled = not error or connect_settled(sock)
        finally:
            if settled:
                sock.close()
        return self._ok if settled else self._handshake(sock)

    async def _handshake(self, sock: socket.socket) -> Outcome:
        try:
            await _writable(sock)
            if not connect_settled(sock):  # raises the error the handshake ended with
                raise OSError(errno.ENOTCONN, "writable but not connected")
        finally:
            sock.close()
        return self._ok


async def _writable(sock: socket.socket) -> None:
    """Until the socket is writable (its handshake ended, either way)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    fd = sock.fileno()

    def settle() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, settle)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
