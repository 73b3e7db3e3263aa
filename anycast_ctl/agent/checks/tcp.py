"""TCP connect check: a completed handshake is healthy."""

from __future__ import annotations

import asyncio
import socket

from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.config.node import TcpCheck


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        finally:
            sock.close()
        return self._ok
