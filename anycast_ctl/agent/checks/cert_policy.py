"""The node's certificate-expiry policy applied to what a TLS check found (pure core + wrapper).

A TLS check reports `days_left` of the certificate it was shown. `judge` maps it, with the
node's `certificates` settings, to one of three levels:

- ok: more than `warn_days` left;
- warn: fewer than `warn_days`: still healthy, the detail says "expiring", a warning is logged
  once when the level is entered, and the metrics carry the days and both thresholds;
- withdraw: fewer than this node's withdraw threshold: a soft failure, so the VIPs go after
  `fall` results like any other failing check.

Every LB node usually sees the same certificate (the backends' or a shared one), so one
threshold for all would withdraw every node in the same minute, a self-inflicted outage days
before the certificate is actually invalid. The threshold is staggered per node by its slot
among the nodes sharing the certificate: `withdraw_days * (slots - 1 - slot) / (slots - 1)`.
With `withdraw_days` 6 and 3 slots, slot 0 withdraws at 6 days left, slot 1 at 3, and slot 2
never early: the VIP keeps one node until the certificate has expired and the handshake
itself fails. A lone node (1 slot) never withdraws early either: that would help no client.
Unset, slot and slots come from a hash of the node name among `HASH_SLOTS` (staggered, but
with no guarantee that some node is in the last slot).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from enum import StrEnum
from typing import Protocol

from anycast_ctl.agent.checks.outcome import Outcome
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import Certificates

log = logging.getLogger(__name__)

HASH_SLOTS = 8
CERTIFICATE_LEVEL = "certificate"  # the key of the verdict in the outcome's extra (status)


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    WITHDRAW = "withdraw"


def slot_of(node: str, policy: Certificates) -> tuple[int, int]:
    """(slot, slots): as configured, else stable per node name among HASH_SLOTS."""
    if policy.slot is not None and policy.slots is not None:
        return policy.slot, policy.slots
    return hashlib.sha256(node.encode()).digest()[0] % HASH_SLOTS, HASH_SLOTS


def withdraw_threshold(node: str, policy: Certificates) -> float:
    slot, slots = slot_of(node, policy)
    if slots == 1:
        return 0.0
    return policy.withdraw_days * (slots - 1 - slot) / (slots - 1)


def judge(days_left: float, node: str, policy: Certificates) -> Level:
    if days_left < withdraw_threshold(node, policy):
        return Level.WITHDRAW
    if days_left < policy.warn_days:
        return Level.WARN
    return Level.OK


def apply_policy(outcome: Outcome, node: str, policy: Certificates) -> tuple[Outcome, Level]:
    """The outcome with the policy's verdict; outcomes without `days_left` pass unchanged."""
    days = outcome.extra.get("days_left")
    if not isinstance(days, int | float) or outcome.health is not Health.OK:
        return outcome, Level.OK
    threshold = withdraw_threshold(node, policy)
    level = judge(days, node, policy)
    extra = {
        **outcome.extra,
        "warn_days": policy.warn_days,
        "withdraw_days": threshold,
        CERTIFICATE_LEVEL: level.value,
    }
    if level is Level.WITHDRAW:
        slot, slots = slot_of(node, policy)
        detail = (
            f"certificate expires in {days:.1f} days, fewer than this node's withdraw threshold"
            f" {threshold:g} (withdraw_days {policy.withdraw_days:g}, slot {slot} of {slots})"
        )
        return Outcome(Health.SOFT_FAIL, detail, extra), level
    if level is Level.WARN:
        detail = f"{outcome.detail}; expiring: fewer than warn_days {policy.warn_days:g}"
        return replace(outcome, detail=detail, extra=extra), level
    return replace(outcome, extra=extra), level


class _Check(Protocol):  # agent/checks/__init__.py's Check, restated to avoid an import cycle
    name: str
    target: str

    async def probe(self) -> Outcome: ...


class CertificatePolicyCheck:
    """Wraps a TLS checker; logs when a certificate's level changes."""

    def __init__(self, inner: _Check, node: str, policy: Certificates) -> None:
        self.inner = inner
        self.name = inner.name
        self.target = inner.target
        self.node = node
        self.policy = policy
        self.level = Level.OK

    async def probe(self) -> Outcome:
        outcome = await self.inner.probe()
        judged, level = apply_policy(outcome, self.node, self.policy)
        if level is not self.level:
            logger = log.info if level is Level.OK else log.warning
            logger("check %s: certificate %s (%s)", self.name, level.value, judged.detail)
            self.level = level
        return judged
