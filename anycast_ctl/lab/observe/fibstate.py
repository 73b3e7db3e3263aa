"""A prefix's next hops as the kernel reports them, and questions about them over time. Pure:
decoding of rtnetlink route messages (already parsed by pyroute2) and timeline queries; the
reader thread is lab/observe/fibwatch.py, its sockets come from lab/net/netns.py.

How the kernel notifies (checked on this kernel, see tests/integration/test_lab_fibwatch.py):
- IPv4: every RTM_NEWROUTE carries the whole route (all next hops); RTM_DELROUTE removes it.
- IPv6: RTM_NEWROUTE (add, replace, append) carries the whole route with every sibling, but
  deleting one sibling sends an RTM_DELROUTE with only that next hop.
Several routes may share the prefix (different metrics): the kernel forwards by the lowest
metric, so that route's next hops are "the" set.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWROUTE
from pyroute2.netlink.rtnl.rtmsg import RTNH_F_DEAD

MAIN_TABLE = 254


class Hop(NamedTuple):
    gateway: str | None
    oif: int
    flags: int  # RTNH_F_*: DEAD means the kernel no longer hashes flows to it
    weight: int  # rtnh_hops + 1, as `ip route` shows it

    @property
    def usable(self) -> bool:
        return not self.flags & RTNH_F_DEAD


@dataclass(frozen=True)
class FibSample:
    time: float  # time.monotonic() when the notification was read
    hops: frozenset[Hop]
    resync: bool = False  # taken from a dump after lost notifications, not from an event

    @property
    def gateways(self) -> frozenset[str]:
        """The gateways flows are hashed to now (dead next hops excluded)."""
        return frozenset(h.gateway for h in self.hops if h.usable and h.gateway)


RouteKey = tuple[int, int]  # (metric, tos): routes for one prefix in one table


@dataclass(frozen=True)
class RouteUpdate:
    kind: int  # RTM_NEWROUTE or RTM_DELROUTE
    key: RouteKey
    hops: frozenset[Hop]


def decode_route(msg, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> RouteUpdate | None:
    """A decoded rtmsg -> RouteUpdate if it concerns exactly `network` in the main table."""
    if msg["header"]["type"] not in (RTM_NEWROUTE, RTM_DELROUTE):
        return None
    if msg["family"] != (socket.AF_INET if network.version == 4 else socket.AF_INET6):
        return None
    table = msg.get_attr("RTA_TABLE") or msg["table"]  # RTA_TABLE holds tables > 255
    if table != MAIN_TABLE or msg["dst_len"] != network.prefixlen:
        return None
    dst = msg.get_attr("RTA_DST")  # absent for a default route
    if dst is not None and ipaddress.ip_address(dst) != network.network_address:
        return None
    multipath = msg.get_attr("RTA_MULTIPATH")
    if multipath:
        hops = frozenset(
            Hop(_gateway(nh), nh["oif"], nh["flags"], nh["hops"] + 1) for nh in multipath
        )
    else:
        hops = frozenset({Hop(_gateway(msg), msg.get_attr("RTA_OIF") or 0, msg["flags"] & 0xFF, 1)})
    key = (msg.get_attr("RTA_PRIORITY") or 0, msg["tos"])
    return RouteUpdate(msg["header"]["type"], key, hops)


def _gateway(msg) -> str | None:
    via = msg.get_attr("RTA_VIA")  # an IPv4 route through an IPv6 next hop (RFC 5549)
    if via:
        return via.get("addr") if isinstance(via, dict) else str(via)
    return msg.get_attr("RTA_GATEWAY")


class RouteTable:
    """The routes of one prefix, fed with RouteUpdates; `hops()` is what the kernel uses."""

    def __init__(self, version: int):
        self.version = version
        self.routes: dict[RouteKey, frozenset[Hop]] = {}

    def apply(self, update: RouteUpdate) -> None:
        if update.kind == RTM_NEWROUTE:
            self.routes[update.key] = update.hops
        elif self.version == 6:  # one sibling deleted: only that next hop is in the message
            left = self.routes.get(update.key, frozenset()) - update.hops
            if left:
                self.routes[update.key] = left
            else:
                self.routes.pop(update.key, None)
        else:
            self.routes.pop(update.key, None)

    def hops(self) -> frozenset[Hop]:
        if not self.routes:
            return frozenset()
        return self.routes[min(self.routes)]


def state_at(samples: list[FibSample], when: float) -> FibSample | None:
    """The sample in force at `when` (the last one taken at or before it)."""
    current = None
    for sample in samples:
        if sample.time > when:
            break
        current = sample
    return current


def first_time(
    samples: list[FibSample], since: float, predicate: Callable[[FibSample], bool]
) -> float | None:
    """The earliest time >= since at which predicate holds: `since` itself if it already
    holds then, else the time of the first later sample where it holds; None if never."""
    at_start = state_at(samples, since)
    if at_start is not None and predicate(at_start):
        return since
    for sample in samples:
        if sample.time > since and predicate(sample):
            return sample.time
    return None


def without(gateways: Iterable[str]) -> Callable[[FibSample], bool]:
    """Predicate: none of `gateways` is in use (the node is out of this router's FIB)."""
    gone = frozenset(gateways)
    return lambda sample: not (sample.gateways & gone)


def with_any(gateways: Iterable[str]) -> Callable[[FibSample], bool]:
    """Predicate: at least one of `gateways` is in use (the node is back)."""
    wanted = frozenset(gateways)
    return lambda sample: bool(sample.gateways & wanted)


def departures_between(
    samples: list[FibSample], start: float, end: float, gateways: Iterable[str]
) -> int:
    """How many times `gateways` went from all in use to not all in use in (start, end]:
    each withdrawal of a node from this FIB counts once, however long it lasted and whether it
    came back (one already out at `start` counts only if it leaves again)."""
    wanted = frozenset(gateways)
    if not wanted:
        return 0
    first = state_at(samples, start)
    count, present = 0, first is not None and wanted <= first.gateways
    for sample in samples:
        if start < sample.time <= end:
            now = wanted <= sample.gateways
            count += present and not now
            present = now
    return count
