"""HAProxy check over the runtime API (the unix stats socket): frontend OPEN, enough servers UP.

A missing socket or a refused connection (HAProxy gone, stale socket file) is hard;
everything HAProxy itself reports (frontend paused, too few servers) is soft.
"""

from __future__ import annotations

import asyncio

from anycast_ctl.agent.checks import haproxy_stat
from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.config.node import HaproxyCheck
from anycast_ctl.errors import UserError

ANSWER_CAP = 4 * 1024 * 1024  # bytes; one backend's rows are far smaller


class HaproxyChecker:
    def __init__(self, name: str, spec: HaproxyCheck) -> None:
        for field, value in (("frontend", spec.frontend), ("backend", spec.backend)):
            if not haproxy_stat.valid_proxy_name(value):
                raise UserError.single(
                    "node config",
                    f"checks.{name}.{field}",
                    f"{value!r} is not an HAProxy proxy name (letters, digits, '_', '.', ':', '-')",
                )
        self.name = name
        self.socket = spec.socket
        self.frontend = spec.frontend
        self.backend = spec.backend
        self.min_servers_up = spec.min_servers_up
        self.command = haproxy_stat.stat_command(spec.frontend, spec.backend)
        self.target = str(spec.socket)

    async def probe(self) -> Outcome:
        reader, writer = await asyncio.open_unix_connection(str(self.socket))
        try:
            writer.write(self.command)
            await writer.drain()
            # Without "prompt", HAProxy answers the command line and closes.
            data = await _read_to_eof(reader, ANSWER_CAP)
        finally:
            writer.transport.abort()
        answers = haproxy_stat.split_responses(data.decode("utf-8", errors="replace"))
        if len(answers) != 2:
            raise UserError.single(
                "<haproxy show stat>", "", f"expected 2 answers, got {len(answers)}"
            )
        rows = haproxy_stat.rows_of_answer(answers[0]) + haproxy_stat.rows_of_answer(answers[1])
        return haproxy_stat.assess(rows, self.frontend, self.backend, self.min_servers_up)


async def _read_to_eof(reader: asyncio.StreamReader, cap: int) -> bytes:
    data = bytearray()
    while chunk := await reader.read(65536):
        data += chunk
        if len(data) > cap:
            raise UserError.single("<haproxy show stat>", "", f"answer longer than {cap} bytes")
    return bytes(data)
