"""Flap damping for a VIP's announcement: RFC 2439's idea, applied by the origin (pure).

Each time a VIP that was announced (or was healthy and held back) fails and is withdrawn, its
penalty grows by `penalty`. The penalty decays exponentially with `half_life`. When a
withdrawal lifts it above `suppress`, the VIP is suppressed: it stays withdrawn, however
healthy, until the penalty has decayed below `reuse`. `max_suppress` caps the penalty at
the value that decays to `reuse` in that time, so no VIP is held out longer than
`max_suppress` after its last flap.

Damping only ever keeps a route out: it never delays a withdrawal, so a hard failure is
withdrawn at once whatever the penalty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Damping:
    half_life: float  # seconds for the penalty to halve
    penalty: float = 1000.0  # added per withdrawal caused by a failure
    suppress: float = 2000.0  # above this after a withdrawal: suppressed
    reuse: float = 750.0  # below this: may be announced again
    max_suppress: float = 60.0  # seconds: the longest a VIP stays suppressed after its last flap

    def __post_init__(self) -> None:
        if not (self.half_life > 0 and self.penalty > 0 and self.max_suppress > 0):
            raise ValueError("half_life, penalty and max_suppress must be > 0")
        if not 0 < self.reuse < self.suppress:
            raise ValueError(f"need 0 < reuse ({self.reuse}) < suppress ({self.suppress})")

    @property
    def ceiling(self) -> float:
        """The highest penalty: it decays to `reuse` in exactly `max_suppress` seconds."""
        return self.reuse * 2 ** (self.max_suppress / self.half_life)

    def decayed(self, penalty: float, since: float, now: float) -> float:
        """`penalty` at `since`, as it stands at `now` (a clock going back decays nothing)."""
        if penalty <= 0:
            return 0.0
        return penalty * 2 ** (-max(0.0, now - since) / self.half_life)

    def add_flap(self, penalty: float) -> float:
        return min(penalty + self.penalty, self.ceiling)

    def reuse_at(self, penalty: float, at: float) -> float:
        """When `penalty` (at time `at`) will have decayed to `reuse` (`at` if it already has)."""
        if penalty <= self.reuse:
            return at
        return at + self.half_life * math.log2(penalty / self.reuse)
