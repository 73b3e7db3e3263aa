"""An LB node's IPv6 return routes, kept as a routing daemon would keep them, run inside the
node's namespace:

    python -m anycast_ctl.lab.programs.route_keeper --routes routes.json --ready-file READY

routes.json: [{"prefix", "source" (or null), "nexthops": [{"gateway", "device"}, ...]}, ...],
the node's IPv6 static routes as the lab installed them (render/hostnet.static_routes).

Why: when a router dies, the LB node's link to it loses its carrier. IPv4 flushes its route
cache then, so every socket looks its route up again and the multipath route (which skips a
next hop whose link is down: ignore_routes_with_linkdown) sends it to a live router. IPv6
only flags the next hop RTNH_F_LINKDOWN: a socket keeps its cached route (its cookie, the
FIB node's serial number, does not change), so an established connection's replies go on
into the dead link, queued behind a neighbour entry that never resolves (INCOMPLETE for 3 s),
and TCP does not even retransmit while they sit there (TCPSpuriousRtxHostQueues); only its
negative advice after three timeouts looks the route up again, past the 3 s a long-lived
connection may stall. A routing daemon replaces the route without the dead next hop, which
changes the serial number, and every socket moves at its next packet. This does the same:
on every link event it replaces each route whose set of usable next hops changed (those
whose device is up with a carrier), and puts the full set back when the link returns. It
also deletes the IPv6 neighbour entries of a link that lost its carrier: what a socket sent
there before the replacement waits in such an entry, and TCP retransmits it (now over the
new route) only once it is freed.
A route with no usable next hop is left alone (the kernel removes it when its last link goes
administratively down; the lab puts it back when the links return).

Once the first pass is done, READY is written. SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000  # the carrier
RTPROT_STATIC = 4  # as `ip route add` sets it, and as the lab installed these routes


@dataclass(frozen=True)
class KeptRoute:
    prefix: str
    source: str | None
    nexthops: tuple[tuple[str, str], ...]  # (gateway, device)


def parse_routes(data: Any) -> list[KeptRoute]:
    """routes.json -> routes; ValueError naming the entry on bad input."""
    if not isinstance(data, list):
        raise ValueError("routes: a list of routes is expected")
    out = []
    for i, entry in enumerate(data):
        try:
            hops = tuple((str(h["gateway"]), str(h["device"])) for h in entry["nexthops"])
            if not hops:
                raise ValueError("no next hop")
            out.append(KeptRoute(str(entry["prefix"]), entry.get("source"), hops))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"routes[{i}]: {exc!r}") from None
    return out


def usable(routes: Iterable[KeptRoute], live: set[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Pure: prefix -> the next hops to install, given the devices that are up with a carrier
    (in the route's own order). A route none of whose next hops is usable is left out."""
    out = {}
    for route in routes:
        hops = tuple(h for h in route.nexthops if h[1] in live)
        if hops:
            out[route.prefix] = hops
    return out


def changed(
    before: dict[str, tuple[tuple[str, str], ...]], after: dict[str, tuple[tuple[str, str], ...]]
) -> list[str]:
    """Pure: the prefixes whose next hops differ (in `after`'s order)."""
    return [prefix for prefix, hops in after.items() if before.get(prefix) != hops]


def _live_devices(ipr: Any) -> set[str]:
    live = set()
    for link in ipr.get_links():
        flags = link["flags"]
        if flags & IFF_UP and flags & IFF_LOWER_UP:
            live.add(link.get_attr("IFLA_IFNAME"))
    return live


def _forget_neighbours(ipr: Any, device: str) -> None:
    index = ipr.link_lookup(ifname=device)
    if not index:
        return
    for entry in ipr.get_neighbours(family=socket.AF_INET6, ifindex=index[0]):
        dst = entry.get_attr("NDA_DST")
        if dst:
            ipr.neigh("del", dst=dst, ifindex=index[0], family=socket.AF_INET6)


def _replace(ipr: Any, route: KeptRoute, hops: tuple[tuple[str, str], ...]) -> None:
    spec: dict[str, Any] = {"dst": route.prefix, "family": socket.AF_INET6, "proto": RTPROT_STATIC}
    if route.source:
        spec["prefsrc"] = route.source
    oifs = [{"gateway": gw, "oif": ipr.link_lookup(ifname=dev)[0]} for gw, dev in hops]
    if len(oifs) == 1:
        spec.update(oifs[0])
    else:
        spec["multipath"] = oifs
    ipr.route("replace", **spec)


def keep(routes: list[KeptRoute], ready_file: Path) -> None:
    # pyroute2 is the lab's netlink library; this program runs in the node's own namespace
    from pyroute2 import IPRoute
    from pyroute2.netlink.rtnl import RTMGRP_LINK

    installed: dict[str, tuple[tuple[str, str], ...]] = {r.prefix: r.nexthops for r in routes}
    by_prefix = {r.prefix: r for r in routes}
    devices = {device for r in routes for _, device in r.nexthops}
    with IPRoute() as events, IPRoute() as ipr:
        events.bind(groups=RTMGRP_LINK)  # subscribed before the first look: no event is missed
        first = True
        live_before: set[str] = set()
        while True:
            live = _live_devices(ipr) & devices
            want = usable(routes, live)
            for prefix in changed(installed, want):
                try:
                    _replace(ipr, by_prefix[prefix], want[prefix])
                    installed[prefix] = want[prefix]
                    print(f"{prefix}: via {', '.join(d for _, d in want[prefix])}", flush=True)
                except Exception as exc:  # a link that vanished meanwhile: the next event retries
                    print(f"{prefix}: replace failed: {exc}", flush=True)
            for device in sorted(live_before - live) if not first else ():
                try:
                    _forget_neighbours(ipr, device)
                except Exception as exc:  # an entry gone meanwhile: nothing left to free
                    print(f"{device}: neighbours: {exc}", flush=True)
            live_before = live
            if first:
                ready_file.write_text("ready\n")
                first = False
            events.get()  # blocks until a link changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anycast_ctl.lab.programs.route_keeper")
    parser.add_argument("--routes", required=True, type=Path)
    parser.add_argument("--ready-file", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        routes = parse_routes(json.loads(args.routes.read_text()))
    except (OSError, ValueError) as exc:
        print(f"error: {args.routes}: {exc}", file=sys.stderr)
        return 2
    keep(routes, args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
