"""Flap resistance of the agent's state machine, driven with seeded random check results.

For the recommended profile (what `render node` writes) against the old rule (rise 3, fall 2
in a row, no damping): withdrawals per 10,000 checks of a healthy service whose answers are
late (soft failures) with a given probability; how long a real outage takes to withdraw; and
what damping does to a crash loop. Pure: no daemons, seconds to run.
"""

from __future__ import annotations

import random
import statistics

from anycast_ctl.agent.fsm import Announce, VipState, VipStatus, Withdraw, step
from anycast_ctl.agent.health import Health
from anycast_ctl.render.lb_layout import check_profile

CHECKS = 10_000
SEEDS = range(10)
QUICK_SEEDS = range(3)  # --quick: a third of the seeds, same rules and checks per seed
PROFILE = check_profile("recommended")
INTERVAL = PROFILE.agent.interval


def new_rule(status, health, now):
    t = PROFILE.agent
    return step(
        status, health, False, now, t.rise, t.fall, 0.0, window=t.window,
        damping=PROFILE.damping.rule(),
    )  # fmt: skip


def old_rule(status, health, now):
    return step(status, health, False, now, 3, 2, 0.0)


def withdrawals(rule, late: float, seed: int) -> int:
    rng = random.Random(seed)
    status, count = VipStatus(VipState.UP, 0, 0.0), 0
    for i in range(1, CHECKS + 1):
        health = Health.SOFT_FAIL if rng.random() < late else Health.OK
        status, actions = rule(status, health, i * INTERVAL)
        count += actions.count(Withdraw())
    return count


def outage_seconds(rule, health: Health) -> float:
    status, now = VipStatus(VipState.UP, 0, 0.0), 0.0
    while status.announced:
        now += INTERVAL
        status, _ = rule(status, health, now)
    return now


def crash_loop(rule, period: float, seconds: float = 60.0) -> tuple[int, float]:
    """HAProxy dies every `period` s and is back 0.2 s later: (announcements, share of time
    announced)."""
    status, now, announces, up_time = VipStatus(VipState.UP, 0, 0.0), 0.0, 0, 0.0
    while now < seconds:
        now += INTERVAL
        dead = (now % period) < 0.2
        status, actions = rule(status, Health.HARD_FAIL if dead else Health.OK, now)
        announces += sum(isinstance(a, Announce) for a in actions)
        up_time += INTERVAL if status.announced else 0.0
    return announces, up_time / seconds


def main(quick: bool = False) -> None:
    seeds = QUICK_SEEDS if quick else SEEDS
    t = PROFILE.agent
    print(
        f"recommended: interval {t.interval}s, rise {t.rise}, fall {t.fall} of the last "
        f"{t.window}, damping half-life {PROFILE.damping.half_life:g}s;"
        " old: rise 3, fall 2 in a row"
    )
    print(
        f"withdrawals per {CHECKS:,} checks of a healthy service"
        f" (mean / max over {len(seeds)} seeds)"
    )
    print("  late answers   old rule        recommended")
    for late in (0.01, 0.05, 0.10, 0.20):
        old = [withdrawals(old_rule, late, s) for s in seeds]
        new = [withdrawals(new_rule, late, s) for s in seeds]
        print(
            f"  {late:>5.0%}          {statistics.mean(old):6.1f} / {max(old):<4}   "
            f"{statistics.mean(new):6.1f} / {max(new)}"
        )
    for label, health in (("every answer late (soft)", Health.SOFT_FAIL),
                          ("HAProxy dead (hard)", Health.HARD_FAIL)):  # fmt: skip
        print(
            f"real outage, {label}: withdrawn after {outage_seconds(old_rule, health):.1f}s (old) "
            f"/ {outage_seconds(new_rule, health):.1f}s (recommended), + ExaBGP to FIB ~0.1s"
        )
    for period in (1.0, 3.0, 10.0):
        o, n = crash_loop(old_rule, period), crash_loop(new_rule, period)
        print(
            f"crash loop every {period:g}s for 60s: announcements {o[0]} (old) / {n[0]} "
            f"(recommended), announced {o[1]:.0%} / {n[1]:.0%} of the time"
        )
