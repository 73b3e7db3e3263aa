"""When each route lost a next hop, read from `ip -ts monitor route` output. Pure.

A poll of the FIB by route dump is late by up to a dump (pyroute2 decodes 1,000 multipath
routes in 0.1-0.6 s on the lab's 2 cores), so bench_scale also keeps a route monitor running
in the router's namespace: the kernel announces every route change as it happens, and `ip`
stamps it on receipt. Its blocks look like

    [2026-12-02T16:24:00.070554] 198.19.0.1 proto bgp metric 20
    \tnexthop via 100.64.0.5 dev eth-lb2 weight 1
    [2026-12-02T16:24:00.070601] Deleted 198.19.0.2 via 100.64.0.3 dev eth-lb1 proto bgp ...
    [2026-12-02T16:24:00.070640] 198.19.0.3 via 100.64.0.5 dev eth-lb2 proto bgp metric 20

(a /32 or /128 is printed without its length; `ip -ts` prints local time).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

_HEAD = re.compile(r"^\[(?P<ts>[0-9T:.-]+)\] (?P<rest>.*)$")


@dataclass(frozen=True)
class RouteEvent:
    at: float  # seconds since the epoch
    prefix: str  # normalized, e.g. "198.19.0.1/32"
    deleted: bool
    gateways: frozenset[str]


def _prefix(word: str) -> str | None:
    try:
        return str(ipaddress.ip_network(word, strict=False))
    except ValueError:
        return None


def _gateways(words: list[str]) -> set[str]:
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w == "via"}


def parse(lines: Iterable[str]) -> list[RouteEvent]:
    """The route events in `lines`, in order; lines of other kinds are skipped."""
    events: list[RouteEvent] = []
    head: tuple[float, str, bool, set[str]] | None = None

    def close() -> None:
        if head is not None:
            events.append(RouteEvent(head[0], head[1], head[2], frozenset(head[3])))

    for line in lines:
        match = _HEAD.match(line)
        if match:
            close()
            head = None
            words = match["rest"].split()
            deleted = bool(words) and words[0] == "Deleted"
            if deleted:
                words = words[1:]
            prefix = _prefix(words[0]) if words else None
            if prefix is not None:
                at = datetime.fromisoformat(match["ts"]).timestamp()
                head = (at, prefix, deleted, _gateways(words))
        elif head is not None and line.startswith(("\t", " ")):
            head[3].update(_gateways(line.split()))
    close()
    return events


def left_at(events: Iterable[RouteEvent], prefixes: Iterable[str], gateway: str) -> float | None:
    """When the last of `prefixes` stopped having `gateway` as a next hop (an event that
    deletes the route, or replaces it with one without `gateway`); None if one never did."""
    wanted = {str(ipaddress.ip_network(p)) for p in prefixes}
    gone: dict[str, float] = {}
    for event in events:
        if event.prefix not in wanted:
            continue
        if event.deleted or gateway not in event.gateways:
            gone.setdefault(event.prefix, event.at)
        elif event.deleted is False:
            gone.pop(event.prefix, None)  # back via the gateway: only a later loss counts
    if set(gone) != wanted:
        return None
    return max(gone.values())
