"""How a failover experiment runs: its load, its probes and its bounds (pure: no I/O).

    Settings(runs=1, rate=20).withdraw_bound_for("anycast", Scenario.EXABGP_HANG, hold_time)

failover.py runs by them; bench/bench_failover.py's --quick changes a few of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anycast_ctl.lab.experiments.scenario_names import FLAKY_PERCENT, Scenario


@dataclass
class Settings:
    runs: int = 5
    rate: float = 40.0  # steady-load connections per second (all clients together)
    connection_timeout: float = 2.0
    probe_flows: int = 120  # flows re-sent after the withdrawal to see which moved
    steady_seconds: float = 5.0  # the no-event observation period
    flaky_seconds: float = 20.0  # how long the flaky scenario's check answers late
    flaky_percent: int = FLAKY_PERCENT  # of its requests answered late meanwhile
    # exabgp-hang: wait out the routers' hold timer for an implementation that has no watch
    # (False: its usual bound, reported as a miss; the quick bench saves those seconds)
    await_hold_timer: bool = True
    long_lived: int = 200  # connections held open through each run (0: none)
    # Second chance driven by the lab (chance_driver.py): True loads the lab's tables, False
    # removes every table before each run, None leaves them to the deployment (the agent).
    second_chance: bool | None = None
    long_lived_interval: float = 0.05  # each one exchanges a line this often
    # An echo later than this: the connection is broken. Above three retransmissions
    # (0.2 + 0.4 + 0.8 s at TCP's minimum RTO), so a lossy second is not a break.
    long_lived_stall: float = 3.0
    withdraw_bound: dict[str, float] = field(
        default_factory=lambda: {"anycast": 3.0, "exabgp-fast": 3.0, "exabgp-default": 12.0}
    )
    recover_bound: dict[str, float] = field(
        default_factory=lambda: {"anycast": 15.0, "exabgp-fast": 15.0, "exabgp-default": 30.0}
    )

    def withdraw_bound_for(self, impl: str, scenario: Scenario, hold_time: float) -> float:
        """A stopped ExaBGP without a watch leaves when the routers' hold timer expires: wait
        that long (and a little) so the figure is its time, not a miss at the usual bound."""
        bound = self.withdraw_bound[impl]
        if scenario in (Scenario.EXABGP_HANG, Scenario.NODE_FREEZE) and self.await_hold_timer:
            return max(bound, hold_time + 3.0)
        return bound

    def max_run_seconds(self, impl: str, hold_time: float = 0.0) -> float:
        longest = max(self.withdraw_bound_for(impl, Scenario.EXABGP_HANG, hold_time), 0.0)
        events = max(longest, self.flaky_seconds)
        return events + self.recover_bound[impl] + self.steady_seconds + 30
