"""TLS handshake check: chain verified against a CA bundle and the server name; days left.

The handshake itself verifies (an expired, untrusted or misnamed certificate fails it:
soft). After a good handshake the leaf's notAfter gives `extra["days_left"]`; fewer than
`min_days_valid` days is soft too, so a node whose certificate nobody renewed stops
attracting traffic before clients start failing.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.agent.checks.tcp import host_port
from anycast_ctl.config.node import TlsCheck
from anycast_ctl.errors import UserError

SECONDS_PER_DAY = 86400.0


def make_ssl_context(
    check_name: str, ca_file: Path | None, insecure: bool = False
) -> ssl.SSLContext:
    """A client context; built once per check because loading a CA bundle reads files."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:  # missing, unreadable or not PEM
        raise UserError.single(
            "node config", f"checks.{check_name}.ca_file", f"cannot load CA bundle {ca_file}: {exc}"
        ) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def days_left(not_after: datetime, now: float) -> float:
    """Days from `now` (epoch seconds) until `not_after` (aware UTC); negative once expired."""
    return (not_after.timestamp() - now) / SECONDS_PER_DAY


def assess_expiry(not_after: datetime, now: float, min_days_valid: int) -> Outcome:
    days = days_left(not_after, now)
    extra: dict[str, float | int | str] = {
        "days_left": round(days, 3),
        "not_after": not_after.isoformat(),
    }
    if days < min_days_valid:
        return Outcome.soft(
            f"certificate expires in {days:.1f} days ({not_after:%Y-%m-%d}), "
            f"fewer than min_days_valid {min_days_valid}",
            **extra,
        )
    return Outcome.ok(f"certificate valid, expires in {days:.1f} days", **extra)


class TlsChecker:
    def __init__(self, name: str, spec: TlsCheck, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.host = spec.host
        self.port = spec.port
        self.server_name = spec.server_name
        self.min_days_valid = spec.min_days_valid
        self.context = make_ssl_context(name, spec.ca_file)
        self.clock = clock
        self.target = f"{host_port(spec.host, spec.port)} ({spec.server_name})"

    async def probe(self) -> Outcome:
        _, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.context, server_hostname=self.server_name
        )
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.transport.abort()  # skip the close_notify exchange: we only wanted the handshake
        if not der:
            return Outcome.soft(f"no peer certificate: {self.target}")
        # Imported here: `cryptography` costs the agent ~8 MiB, and only TLS checks need it.
        from cryptography import x509

        leaf = x509.load_der_x509_certificate(der)
        return assess_expiry(leaf.not_valid_after_utc, self.clock(), self.min_days_valid)
