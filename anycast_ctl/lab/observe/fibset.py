"""A FibWatcher on every router of a lab for every VIP, and the questions failover experiments
ask of them all: when did every adjacent router drop (or take back) an LB node, and did a
healthy node leave some FIB meanwhile."""

from __future__ import annotations

import time

from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.observe.expect import expected_nexthops
from anycast_ctl.lab.observe.fibstate import departures_between
from anycast_ctl.lab.observe.fibwatch import FibWatcher, state_at, with_any, without


class FibSet:
    """A FibWatcher on every router for every VIP, for the whole session."""

    def __init__(self, lab: LabHandle):
        self.lab = lab
        self.watchers: dict[tuple[str, str], FibWatcher] = {}

    def __enter__(self) -> FibSet:
        try:
            for router in self.lab.topology.routers:
                for vip in self.lab.topology.vips:
                    self.watchers[(router.name, vip.name)] = FibWatcher(
                        self.lab.namespace(router.name), vip.address
                    ).start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for watcher in self.watchers.values():
            watcher.close()
        self.watchers.clear()

    def gateways(self, router: str, vip: str, lb: str) -> set[str]:
        """The addresses `router` would use as next hops toward `lb` for `vip`."""
        topo, plan = self.lab.topology, self.lab.plan
        if lb not in topo.neighbors(router):
            return set()
        iface = plan.interface(lb, router)
        version = topo.vip(vip).version
        address = iface.ipv4 if version == 4 else iface.ipv6
        return {str(address.ip)} if address is not None else set()

    def adjacent(self, lb: str) -> dict[tuple[str, str], set[str]]:
        """(router, vip) -> the node's gateways there: for an LB node, every VIP it announces;
        for a router, every VIP an upstream router spreads over it when converged."""
        topo = self.lab.topology
        out = {}
        for router, vip in self.watchers:
            if topo.kind(lb) == "lb":
                uses = vip in topo.lb(lb).vips
            else:
                uses = lb in expected_nexthops(topo, router, vip)
            gws = self.gateways(router, vip, lb) if uses else set()
            if gws:
                out[(router, vip)] = gws
        return out

    def time_all(
        self, lb: str, since: float, timeout: float, back: bool
    ) -> tuple[float | None, dict[str, float | None]]:
        """Seconds from `since` until every adjacent router (for every VIP) no longer uses
        `lb` (back=False) or uses it again (back=True); None when that did not happen within
        `timeout`. Also the per "router/vip" times."""
        deadline = time.monotonic() + timeout
        per: dict[str, float | None] = {}
        for (router, vip), gws in self.adjacent(lb).items():
            predicate = with_any(gws) if back else without(gws)
            try:
                at = self.watchers[(router, vip)].wait_for(
                    predicate, since=since, timeout=max(0.0, deadline - time.monotonic())
                )
                per[f"{router}/{vip}"] = round(at - since, 6)
            except TimeoutError:
                per[f"{router}/{vip}"] = None
        times = [v for v in per.values() if v is not None]
        if not per or len(times) != len(per):
            return None, per
        return max(times), per

    def departures(
        self, start: float, end: float, healthy: set[str], skip: frozenset[str] = frozenset()
    ) -> list[str]:
        """Each (router, vip, lb) where a healthy LB's gateway, in use at `start`, was
        missing at some moment before `end` (routers in `skip`, e.g. one switched off, are
        not asked)."""
        found = []
        for (router, vip), watcher in self.watchers.items():
            if router in skip:
                continue
            samples = watcher.samples()
            first = state_at(samples, start)
            if first is None:
                continue
            window = [first] + [s for s in samples if start < s.time <= end]
            for lb in sorted(healthy):
                gws = self.gateways(router, vip, lb) & first.gateways
                if gws and any(not (gws <= s.gateways) for s in window):
                    found.append(f"{router}/{vip}/{lb}")
        return found

    def withdrawals(self, start: float, end: float, lbs: set[str]) -> int:
        """How many times one of `lbs` left some router's FIB for some VIP in (start, end]
        (each episode once per router and VIP)."""
        return sum(
            departures_between(watcher.samples(), start, end, self.gateways(router, vip, lb))
            for (router, vip), watcher in self.watchers.items()
            for lb in sorted(lbs)
        )
