"""What one probe found, and how an I/O error maps to a health (pure).

A probe returns an `Outcome`; `run_check` adds the name, latency and time to make a
`CheckResult`. Expected I/O errors become outcomes here; anything else is a bug and is
not classified (the caller lets it propagate, and the agent treats it as fatal).
"""

from __future__ import annotations

import asyncio
import errno
import re
import ssl
from dataclasses import dataclass, field

from anycast_ctl.agent.health import Health
from anycast_ctl.errors import UserError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
DETAIL_MAX = 200


@dataclass(frozen=True)
class Outcome:
    health: Health
    detail: str
    extra: dict[str, float | int | str] = field(default_factory=dict)

    @classmethod
    def ok(cls, detail: str, **extra: float | int | str) -> Outcome:
        return cls(Health.OK, detail, extra)

    @classmethod
    def soft(cls, detail: str, **extra: float | int | str) -> Outcome:
        return cls(Health.SOFT_FAIL, detail, extra)

    @classmethod
    def hard(cls, detail: str, **extra: float | int | str) -> Outcome:
        return cls(Health.HARD_FAIL, detail, extra)


def one_line(text: str, limit: int = DETAIL_MAX) -> str:
    """Text from a peer or a command, made safe for a one-line detail (logs, status, metrics)."""
    flat = _CONTROL.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# The service is not there at all: nothing listens, the path or program does not exist,
# or we may never reach it. Waiting for `fall` results would only delay the withdraw.
_HARD_ERRNOS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "not a directory",
    errno.ENOEXEC: "not an executable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EADDRNOTAVAIL: "address not available",
    errno.ENOTSOCK: "not a socket",
}


def classify_error(exc: BaseException, target: str) -> Outcome | None:
    """Map an expected failure to an outcome; None means "not expected: let it propagate".

    `target` names what was probed ("127.0.0.1:80", "/run/haproxy.sock") for the detail.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        # The service answers; its certificate is wrong. Soft: rise/fall decides.
        return Outcome.soft(one_line(f"TLS verification failed: {exc.verify_message}: {target}"))
    if isinstance(exc, ssl.SSLError):
        return Outcome.soft(one_line(f"TLS error: {exc.reason or exc}: {target}"))
    if isinstance(exc, UserError):
        # A peer answered with something we cannot use (not HTTP, not `show stat` CSV...).
        whats = "; ".join(p.what for p in exc.problems) or "bad answer"
        return Outcome.soft(one_line(f"{whats}: {target}"))
    if isinstance(exc, asyncio.IncompleteReadError):
        return Outcome.soft(one_line(f"connection closed early: {target}"))
    if isinstance(exc, OSError):
        reason = _HARD_ERRNOS.get(exc.errno)  # type: ignore[arg-type]
        if reason is not None:
            return Outcome.hard(one_line(f"{reason}: {target}"))
        # Reset, broken pipe, kernel connect timeout, ...: something is there but misbehaves.
        return Outcome.soft(one_line(f"{exc.strerror or exc.__class__.__name__}: {target}"))
    return None
