"""Which checks the VIPs need, and how often and how long each may run (pure).

Several VIPs may name the same check; it runs once per interval for all of them. When
their timings differ, the check follows the most demanding VIP: the shortest interval and
the shortest timeout (a check's own `timeout` wins over the VIPs' timings).
"""

from __future__ import annotations

from dataclasses import dataclass

from anycast_ctl.config.node import NodeConfig


@dataclass(frozen=True)
class CheckSchedule:
    name: str
    interval: float  # seconds between runs
    timeout: float  # hard limit of one run
    vips: tuple[str, ...]  # VIP addresses that use the check, in config order


def schedule_checks(config: NodeConfig) -> dict[str, CheckSchedule]:
    """Check name -> schedule, for every check some VIP uses, in order of first use."""
    plans: dict[str, CheckSchedule] = {}
    for vip in config.vips:
        timing = config.timing_for(vip)
        for name in vip.checks:
            timeout = config.checks[name].timeout or timing.timeout
            seen = plans.get(name)
            if seen is None:
                plans[name] = CheckSchedule(name, timing.interval, timeout, (vip.address,))
            elif vip.address not in seen.vips:
                plans[name] = CheckSchedule(
                    name,
                    min(seen.interval, timing.interval),
                    min(seen.timeout, timeout),
                    seen.vips + (vip.address,),
                )
    return plans
