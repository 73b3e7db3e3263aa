"""The check kinds of a node config: what the agent probes to decide that a VIP is healthy.

Each is a discriminated union member on `type`; config/node.py re-exports them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from anycast_ctl.config.common import IPAddr, Port, SafeStr, StrictModel

Seconds = Annotated[float, Field(gt=0, le=3600)]


class _CheckBase(StrictModel):
    # Per-check override of timing.timeout.
    timeout: Seconds | None = None


class TcpCheck(_CheckBase):
    type: Literal["tcp"]
    host: IPAddr = "127.0.0.1"
    port: Port


class ListeningCheck(_CheckBase):
    """The kernel's socket table: a TCP listener on host:port (or the wildcard) with room in
    its accept queue. For listeners on this node; no connection is made."""

    type: Literal["listening"]
    host: IPAddr = "127.0.0.1"
    port: Port


class HttpCheck(_CheckBase):
    type: Literal["http"]
    url: Annotated[SafeStr, Field(pattern=r"^https?://")]
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = [200]
    body_regex: SafeStr | None = None
    ca_file: Path | None = None  # for https; None means the system bundle
    server_name: SafeStr | None = None  # SNI/verification name if it differs from the URL host
    insecure: bool = False  # skip certificate verification (not recommended)

    @field_validator("body_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class TlsCheck(_CheckBase):
    type: Literal["tls"]
    host: IPAddr = "127.0.0.1"
    port: Port = 443
    server_name: SafeStr
    ca_file: Path | None = None
    # Fail (soft) when the certificate expires in fewer days than this.
    min_days_valid: Annotated[int, Field(ge=0)] = 0


class HaproxyCheck(_CheckBase):
    """HAProxy's runtime API (`show stat`): frontend OPEN and enough servers UP."""

    type: Literal["haproxy"]
    socket: Path  # the stats socket (unix)
    frontend: SafeStr
    backend: SafeStr
    min_servers_up: Annotated[int, Field(ge=0)] = 1


class ExecCheck(_CheckBase):
    """Run a command (argv, no shell); exit code 0 is healthy. Killed on timeout."""

    type: Literal["exec"]
    command: Annotated[list[SafeStr], Field(min_length=1)]


Check = Annotated[
    TcpCheck | ListeningCheck | HttpCheck | TlsCheck | HaproxyCheck | ExecCheck,
    Field(discriminator="type"),
]
