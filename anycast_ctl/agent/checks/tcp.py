"""TCP connect check: a completed handshake is healthy."""

from __future__ import annotations

import asyncio
import errno
import os
import socket

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
        # Refused/unreachable raise OSError (hard, via classify_error); a silent peer
        # runs into run_check's timeout (soft). A bare non-blocking socket: no transport or
        # streams to build for a connection we close at once (this runs every tick).
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            error = sock.connect_ex((self.host, self.port))
            if error not in (0, errno.EINPROGRESS):
                raise OSError(error, os.strerror(error))
            # To a local address (the usual case: HAProxy on this node) the kernel has
            # finished the handshake, or refused it, by the time connect returns: no
            # wait in the event loop, no epoll registration to add and remove.
            if error and not connect_settled(sock):
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
