"""A node's own connections to its VIPs, from `ss -Htn state established` (pure parsing, and
the filter expression that makes the kernel dump only those).

These are the flows whose previous owner is this node once the routers move them: fed to
`sim.owners.owner_change` (through `owned_batch`), they give the entries every other node
needs (`forward_entries`). Reading `ss` is the caller's I/O.

    flows = parse_established(text, {("192.0.2.10", 443)})
    # [("198.18.1.7", 40001, "192.0.2.10", 443), ...]  (client, client port, VIP, VIP port)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from anycast_ctl.sim.chain import FlowKey


def _endpoint(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    host = host.partition("%")[0]  # an interface scope (fe80::1%eth0)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:a.b.c.d from a dual-stack socket
    return str(mapped or address), int(port)


def parse_established(text: str, vips: Iterable[tuple[str, int]]) -> list[FlowKey]:
    """One flow per established connection whose local end is one of `vips`, in `ss` order.

    Lines that are not `Recv-Q Send-Q Local Peer [...]` (a header, a State column) are read by
    their address columns: the first two fields that parse as ADDR:PORT.
    """
    wanted = {(str(ipaddress.ip_address(a)), p) for a, p in vips}
    flows: list[FlowKey] = []
    for line in text.splitlines():
        ends = [e for e in (_endpoint(f) for f in line.split()) if e is not None]
        if len(ends) < 2:
            continue
        (local, local_port), (peer, peer_port) = ends[0], ends[1]
        if (local, local_port) in wanted:
            flows.append((peer, peer_port, local, local_port))
    return flows


def ss_filter_argv(vips: Iterable[str]) -> tuple[str, ...]:
    """`ss` arguments that dump only the established TCP sockets whose local address is one of
    `vips` ('192.0.2.10/32' or bare): ss compiles the expression to inet_diag bytecode, so the
    kernel skips every other socket instead of the agent parsing them. The kernel matches an
    IPv4 condition against a dual-stack socket's ::ffff:a.b.c.d too. Empty: nothing to ask.
    IPv6 addresses go in brackets (ss reads a bare one's last group as a port)."""
    terms: list[str] = []
    for vip in dict.fromkeys(str(ipaddress.ip_address(v.partition("/")[0])) for v in vips):
        terms += [*(("or",) if terms else ()), "src", f"[{vip}]" if ":" in vip else vip]
    if not terms:
        return ()
    return ("ss", "-Htn", "state", "established", "(", *terms, ")")


def count_by_vip(text: str, vips: Iterable[str]) -> dict[str, int]:
    """Established connections per VIP (any port), keyed as given ('192.0.2.10/32' or a bare
    address); every VIP has a key, 0 when nothing is left. The local end is the first ADDR:PORT
    field of a line, as in `parse_established`. A connection whose peer is one of the VIPs too
    is the node talking to itself (a health check of the VIP), not a client's: not counted."""
    keys = {str(ipaddress.ip_address(v.partition("/")[0])): v for v in vips}
    counts = dict.fromkeys(keys.values(), 0)
    for line in text.splitlines():
        ends = [e for e in (_endpoint(f) for f in line.split()) if e is not None]
        if len(ends) < 2:
            continue
        key = keys.get(ends[0][0])
        if key is not None and ends[1][0] not in keys:
            counts[key] += 1
    return counts
