"""What the real-HAProxy agent tests share: HAProxy's config head and the node config they run.

A HAProxy 2.6 in TCP mode with its admin socket in the test's directory; the agent's node
config for a few VIPs with the test's checks, no loopback management and a 2-part tail
(control socket, drain state) in the same directory.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def haproxy_config(stats: Path, body: str) -> str:
    """A HAProxy config: the admin socket at `stats`, TCP defaults, then `body` (dedented)."""
    head = f"""\
global
    stats socket {stats} mode 600 level admin
defaults
    mode tcp
    timeout connect 500ms
    timeout client 5s
    timeout server 5s
"""
    return head + textwrap.dedent(body)


def node_config(
    directory: Path,
    *,
    checks: dict[str, str],
    vips: list[tuple[str, list[str]]],
    interval: float,
    extra: str = "",
) -> str:
    """The agent's node.yaml: `checks` name -> flow mapping, each VIP with its check names."""
    lines = [
        "node: lb1",
        "bgp:",
        "  local_as: 65101",
        "  router_id: 10.0.0.2",
        "  neighbors: [{address: 10.0.0.1, local_address: 10.0.0.2, peer_as: 65000}]",
        f"timing: {{interval: {interval}, timeout: 0.5, rise: 1, fall: 2}}",
        "checks:",
        *(f"  {name}: {spec}" for name, spec in checks.items()),
        "vips:",
        *(f"  - {{address: {address}, checks: [{', '.join(names)}]}}" for address, names in vips),
        "loopback: {manage: false}",
        *([extra] if extra else []),
        f"control: {{socket: {directory}/agent.sock, allow_uids: [0]}}",
        f"drain: {{state_file: {directory}/drain.json}}",
    ]
    return "\n".join(lines) + "\n"
