"""HTTP(S) GET check: expected status, and optionally a regex found in the body.

A minimal HTTP/1.1 client on asyncio streams (no client library: we need one GET, a
status and a capped body, under a hard timeout). `server_name`, when set, is both the TLS
name (SNI and verification) and the Host header, so a local LB can be checked by address
for the name it serves.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

from anycast_ctl.agent.checks import http_wire
from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.agent.checks.tcp import host_port
from anycast_ctl.agent.checks.tls import make_ssl_context
from anycast_ctl.config.node import HttpCheck
from anycast_ctl.errors import UserError


def _bad_url(name: str, what: str) -> UserError:
    return UserError.single("node config", f"checks.{name}.url", what)


class HttpChecker:
    def __init__(self, name: str, spec: HttpCheck) -> None:
        self.name = name
        url = urlsplit(spec.url)
        try:
            port = url.port
        except ValueError as exc:
            raise _bad_url(name, str(exc)) from None
        if not url.hostname:
            raise _bad_url(name, "no host in URL")
        if url.username is not None:
            raise _bad_url(name, "credentials in the URL are not supported")
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        if any(ch.isspace() for ch in path):
            raise _bad_url(name, "the path must not contain whitespace (percent-encode it)")
        https = url.scheme == "https"
        self.host = url.hostname
        self.port = port or (443 if https else 80)
        self.target = f"{url.scheme}://{host_port(self.host, self.port)}{path}"
        self.ssl = make_ssl_context(name, spec.ca_file, spec.insecure) if https else None
        self.server_hostname = (spec.server_name or self.host) if https else None
        # Host as written in the URL (the port only when given), unless server_name overrides it.
        bracketed = f"[{self.host}]" if ":" in self.host else self.host
        host_header = spec.server_name or (f"{bracketed}:{port}" if port else bracketed)
        self.request = http_wire.build_request(host_header, path)
        self.expect_status = frozenset(spec.expect_status)
        self.body_regex = re.compile(spec.body_regex) if spec.body_regex is not None else None

    async def probe(self) -> Outcome:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.ssl, server_hostname=self.server_hostname
        )
        try:
            writer.write(self.request)
            await writer.drain()
            head, body_start = await _read_head(reader)
            return await self._judge(head, body_start, reader)
        finally:
            writer.transport.abort()

    async def _judge(self, head: http_wire.ResponseHead, body_start: bytes, reader) -> Outcome:
        if head.status not in self.expect_status:
            expected = ", ".join(str(s) for s in sorted(self.expect_status))
            return Outcome.soft(f"HTTP {head.status}, expected {expected}", status=head.status)
        if self.body_regex is None:
            return Outcome.ok(f"HTTP {head.status}", status=head.status)
        raw = await _read_body(reader, head, body_start)
        if self.body_regex.search(http_wire.decode_body(head, raw)):
            return Outcome.ok(f"HTTP {head.status}, body matches", status=head.status)
        return Outcome.soft(
            f"HTTP {head.status}, body does not match /{self.body_regex.pattern}/",
            status=head.status,
        )


async def _read_head(reader: asyncio.StreamReader) -> tuple[http_wire.ResponseHead, bytes]:
    buffer = b""
    while (parts := http_wire.split_head(buffer)) is None:
        if len(buffer) > http_wire.HEAD_CAP:
            raise UserError.single(
                "<http response>", "", f"headers longer than {http_wire.HEAD_CAP} bytes"
            )
        chunk = await reader.read(4096)
        if not chunk:
            what = (
                "connection closed before a response" if not buffer else "response head cut short"
            )
            raise UserError.single("<http response>", "", what)
        buffer += chunk
    head, rest = parts
    return http_wire.parse_head(head), rest


async def _read_body(
    reader: asyncio.StreamReader, head: http_wire.ResponseHead, raw: bytes
) -> bytes:
    # Chunk framing costs a few bytes: allow a little over the cap to keep a full BODY_CAP of data.
    limit = http_wire.BODY_CAP + 4096
    while len(raw) < limit and not http_wire.body_complete(head, raw):
        chunk = await reader.read(limit - len(raw))
        if not chunk:
            break
        raw += chunk
    return raw
