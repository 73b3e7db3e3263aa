"""TCP ports for a daemon that a rig or bench starts in a network namespace it shares with
other processes (the host's own, in the tests that need no root).

A port from `bind(0)` comes from the kernel's ephemeral range, the same range every outgoing
connection on the machine takes its source port from: between the pick and the daemon's own
bind, any connect() may take it, and HAProxy then fails with "cannot bind socket". Ports
below that range are never handed out implicitly, so a free one stays free unless another
process listens on it on purpose; each pick is still checked by a bind on every address.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
SPAN = 12_000  # ports tried below the ephemeral range: far more than any rig needs at once
LOWEST = 10_000  # and never the well-known or registered low ports services listen on
ATTEMPTS = 200

_handed_out: set[int] = set()


def ephemeral_low(text: str | None = None) -> int:
    """The first port of the kernel's ephemeral range (32768 when it cannot be read)."""
    if text is None:
        try:
            text = PORT_RANGE.read_text()
        except OSError:
            return 32768
    fields = text.split()
    return int(fields[0]) if fields and fields[0].isdigit() else 32768


def candidate_range(low: int) -> range:
    """Ports to pick from: the SPAN ports just below `low`, never under LOWEST. A kernel whose
    ephemeral range starts at or below LOWEST leaves no such ports: then LOWEST's SPAN, where
    only the bind check guards a pick."""
    top = low if low > LOWEST else LOWEST + SPAN
    return range(max(LOWEST, top - SPAN), top)


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports, free now on every IPv4 address, outside the ephemeral range,
    and never the same twice in this process (two fixtures cannot be handed one port)."""
    ports = candidate_range(ephemeral_low())
    picked: list[int] = []
    for _ in range(ATTEMPTS * count):
        if len(picked) == count:
            break
        port = random.choice(ports)
        if port not in _handed_out and _free(port):
            _handed_out.add(port)
            picked.append(port)
    if len(picked) < count:
        raise RuntimeError(f"no {count} free TCP ports in {ports.start}-{ports.stop - 1}")
    return picked


def free_port() -> int:
    return free_ports(1)[0]
