"""What `sim advise` reports: findings with measured figures, and the runs they come from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from anycast_ctl.config.topology import Topology
from anycast_ctl.sim.advise_fixes import HashingFix
from anycast_ctl.sim.results import EventResult, SimResult

WARNING, INFO = "warning", "info"
MEASURABLE = 0.001  # a fix that saves less than 0.1 % of all flows is not worth a warning


@dataclass(frozen=True)
class Measure:
    """One figure as the topology is (`now`), with this finding's fix, and with every fix."""

    what: str  # e.g. "router s1 fails: flows that change LB"
    unit: str  # "flows" (fraction of all flows) or "ratio"
    now: float
    with_fix: float | None = None
    with_all_fixes: float | None = None  # only where other findings' fixes change it too


@dataclass(frozen=True)
class Fix:
    text: str
    hashing: dict[str, dict[str, object]] = field(default_factory=dict)  # router -> field -> value
    nexthop_order: dict[str, list[str]] = field(default_factory=dict)  # router -> next hops


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str  # warning: the fix measurably saves flows; info: for planning
    tier: str | None
    routers: list[str]
    lbs: list[str]
    summary: str
    # Fraction of all flows concerned: those that change LB node in the finding's worst event
    # (each one a broken connection), or for polarization those crossing the polarized routers.
    flows_at_stake: float
    flows_at_stake_with_fix: float | None
    measures: list[Measure]
    fix: Fix

    def to_dict(self) -> dict[str, object]:
        return {k: _rounded(v) for k, v in asdict(self).items()}


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


@dataclass(frozen=True)
class Runs:
    """The simulator's results for the topology and each fixed variant of it."""

    topo: Topology
    hashing: HashingFix
    order: dict[str, list[str]]
    results: dict[str, SimResult]  # now, hashing, order, all (only the variants that differ)
    resilient: SimResult | None  # LB withdrawals with resilient next-hop groups

    @property
    def advised_variant(self) -> str | None:
        """The variant with every proposed fix applied, if any fix changes the topology."""
        return next((v for v in ("all", "hashing", "order") if v in self.results), None)

    def event(self, variant: str, label: str) -> EventResult | None:
        result = self.results.get(variant)
        return next((e for e in result.events if e.event == label), None) if result else None
