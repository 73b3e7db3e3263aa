"""A VIP's edge policy: who may connect, how fast, with what, and which service a name reaches.

These fields are the interface; the LB's haproxy.cfg is rendered from them
(render/haproxy.py) and `edge_checks.py` checks them against the rest of the topology:

    allow_sources: [198.18.1.0/24]       # only these sources; the rest is closed at the LB
    rate_limit:                          # per source address, at the LB (stick table)
      new_connections_per_second_per_source: 20
      concurrent_connections_per_source: 50
    client_certificates: required        # the backend verifies a client certificate (mTLS)
    sni_routes:                          # several services on one port, by ClientHello name
      - {server_name: api.example.test, backends: [be1]}
      - {server_name: www.example.test, backends: [be2]}

Absent fields mean: any source, no rate limit, no client certificate, one pool (`backends`).
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from anycast_ctl.config.common import StrictModel

# One label: letters, digits, hyphens inside; a name is 2+ labels, at most 253 characters.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})+$")
MAX_RATE = 1_000_000


def _source_prefix(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"not a source prefix: {exc}") from None


def _server_name(value: str) -> str:
    name = value.lower()
    if not _DNS_NAME.match(name):
        raise ValueError(
            f"{value!r} is not a DNS name (letters, digits, hyphens; dot-separated labels;"
            " no wildcard: HAProxy matches the ClientHello's name exactly)"
        )
    return name


SourcePrefix = Annotated[str, AfterValidator(_source_prefix)]
ServerName = Annotated[str, AfterValidator(_server_name)]
Rate = Annotated[int, Field(ge=1, le=MAX_RATE)]


class ClientCertificates(StrEnum):
    NONE = "none"  # the backend asks for no client certificate
    REQUIRED = "required"  # the backend refuses a handshake without a certificate it verifies


class RateLimit(StrictModel):
    """Limits per source address, enforced by the LB before a byte reaches a backend."""

    new_connections_per_second_per_source: Rate | None = None
    concurrent_connections_per_source: Rate | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimit:
        if (
            self.new_connections_per_second_per_source is None
            and self.concurrent_connections_per_source is None
        ):
            raise ValueError(
                "set new_connections_per_second_per_source and/or"
                " concurrent_connections_per_source (or remove rate_limit)"
            )
        return self


NodeRef = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,10}$")]


class SniRoute(StrictModel):
    """One service on a shared VIP:port: ClientHellos naming `server_name` go to `backends`."""

    server_name: ServerName
    backends: Annotated[list[NodeRef], Field(min_length=1)]


class EdgePolicy(StrictModel):
    """The policy fields of a VIP (mixed into `Vip`)."""

    allow_sources: list[SourcePrefix] | None = None
    rate_limit: RateLimit | None = None
    client_certificates: ClientCertificates = ClientCertificates.NONE
    sni_routes: list[SniRoute] | None = None

    @field_validator("allow_sources")
    @classmethod
    def _admits_someone(cls, value: list[str] | None) -> list[str] | None:
        if value == []:
            raise ValueError("an empty list admits no one; omit allow_sources to admit any source")
        return value

    @field_validator("sni_routes")
    @classmethod
    def _routes_something(cls, value: list[SniRoute] | None) -> list[SniRoute] | None:
        if value == []:
            raise ValueError("an empty list routes no name; omit sni_routes for one pool")
        return value

    def policy_key(self) -> str:
        """Equal for VIPs whose edge policy is equal: such VIPs may share one frontend."""
        return self.model_dump_json(
            include={"allow_sources", "rate_limit", "client_certificates", "sni_routes"}
        )
