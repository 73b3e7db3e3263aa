"""What a health check reports. Shared by the checks (I/O) and the state machine (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Health(StrEnum):
    OK = "ok"
    # Timeout, wrong status, too few servers: counted against `fall` before withdrawing.
    SOFT_FAIL = "soft"
    # Connection refused, socket or process gone: the service is not there; withdraw at once.
    HARD_FAIL = "hard"


@dataclass(frozen=True)
class CheckResult:
    check: str  # the check's name in the node config
    health: Health
    detail: str  # one human line: "connect refused", "HTTP 503", "2/3 servers UP"
    latency: float  # seconds the check took
    at: float  # wall-clock time (time.time()) when it finished
    extra: dict[str, float | int | str] = field(default_factory=dict)  # e.g. {"days_left": 41}

    @property
    def ok(self) -> bool:
        return self.health is Health.OK
