"""TCP connect check: a completed handshake is healthy."""

from __future__ import annotations

import asyncio

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

    async def probe(self) -> Outcome:
        # Refused/unreachable raise OSError (hard, via classify_error); a silent peer
        # runs into run_check's timeout (soft).
        _, writer = await asyncio.open_connection(self.host, self.port)
        writer.transport.abort()  # nothing to say; do not wait for a graceful close
        return Outcome.ok(f"connected to {self.target}")
