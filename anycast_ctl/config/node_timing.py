"""Timing of a node config: check cadence and thresholds, flap damping, and the lifeline's
hang limits (how long a silent agent or ExaBGP is given). config/node.py re-exports them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from anycast_ctl.agent.damping import Damping as DampingRule
from anycast_ctl.config.common import StrictModel
from anycast_ctl.config.node_checks import Seconds


class Timing(StrictModel):
    """How often checks run and how many results it takes to change state."""

    interval: Seconds = 1.0
    timeout: Seconds = 0.5
    rise: Annotated[int, Field(ge=1, le=100)] = 3  # OK results in a row to announce
    # Soft failures that withdraw: `fall` of the last `window` results (no window: in a row).
    fall: Annotated[int, Field(ge=1, le=100)] = 2
    window: Annotated[int, Field(ge=1, le=1000)] | None = None

    @model_validator(mode="after")
    def _timeout_fits_interval(self) -> Timing:
        if self.timeout > self.interval:
            raise ValueError(
                f"timeout ({self.timeout}s) must not exceed interval ({self.interval}s): "
                "checks would overlap"
            )
        if self.window is not None and self.window < self.fall:
            raise ValueError(
                f"window ({self.window}) must be at least fall ({self.fall}): fall soft failures "
                "among the last window results withdraw the VIP"
            )
        return self


class FlapDamping(StrictModel):
    """RFC 2439's flap damping applied to each VIP's announcement (docs/state-machine.md).

    Every withdrawal caused by a failure adds `penalty`; the penalty halves every
    `half_life` seconds. A withdrawal that lifts it above `suppress` keeps the VIP withdrawn,
    however healthy, until it decays below `reuse` (at most `max_suppress` seconds after the
    last flap). Withdrawals are never delayed.
    """

    enabled: bool = True
    half_life: Seconds = 15.0
    penalty: Annotated[float, Field(gt=0, le=1e6)] = 1000.0
    suppress: Annotated[float, Field(gt=0, le=1e6)] = 2000.0
    reuse: Annotated[float, Field(gt=0, le=1e6)] = 750.0
    max_suppress: Seconds = 120.0

    @model_validator(mode="after")
    def _reuse_below_suppress(self) -> FlapDamping:
        if self.reuse >= self.suppress:
            raise ValueError(
                f"reuse ({self.reuse:g}) must be below suppress ({self.suppress:g}): a suppressed "
                "VIP comes back when its penalty decays below reuse"
            )
        return self

    def rule(self) -> DampingRule | None:
        """The state machine's parameters (None: damping off)."""
        if not self.enabled:
            return None
        return DampingRule(
            half_life=self.half_life,
            penalty=self.penalty,
            suppress=self.suppress,
            reuse=self.reuse,
            max_suppress=self.max_suppress,
        )


class Lifeline(StrictModel):
    """How fast a hung agent or a hung ExaBGP takes this node out of every router's FIB.

    Both end with ExaBGP stopped, so its BGP sessions close (docs/agent.md, "Fail closed").
    The startup limits apply until every VIP has had its first decision: a CPU-starved
    start-up is slow, not hung.
    """

    # The guardian stops ExaBGP when the agent's event loop sends no heartbeat this long
    # (heartbeats every 0.1 s).
    stall_after: Annotated[float, Field(ge=0.3, le=60)] = 0.6
    startup_stall_after: Annotated[float, Field(ge=0.3, le=600)] = 10.0
    # ExaBGP must answer a command (or the agent's probe, sent every 0.1 s) this fast.
    exabgp_answer_within: Annotated[float, Field(ge=0.2, le=60)] = 0.4
    startup_exabgp_answer_within: Annotated[float, Field(ge=0.2, le=600)] = 10.0

    @model_validator(mode="after")
    def _startup_is_looser(self) -> Lifeline:
        if self.startup_stall_after < self.stall_after:
            raise ValueError(
                f"startup_stall_after ({self.startup_stall_after}s) must not be shorter than "
                f"stall_after ({self.stall_after}s)"
            )
        if self.startup_exabgp_answer_within < self.exabgp_answer_within:
            raise ValueError(
                f"startup_exabgp_answer_within ({self.startup_exabgp_answer_within}s) must not "
                f"be shorter than exabgp_answer_within ({self.exabgp_answer_within}s)"
            )
        return self
