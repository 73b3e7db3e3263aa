"""A node config -> the bfdd.conf of FRR's bfdd on the LB node, beside ExaBGP. Pure.

One BFD session per BGP neighbor of the node config, from the address ExaBGP peers from
(`local_address`) to the router's end: bfdd answers the router's BFD for exactly the sessions
ExaBGP opens. bfdd runs alone here, without zebra: it then knows no interfaces, so a session
names its local address only, never an interface (an interface it cannot find disables the
session). Both ends run with the same timers (`bfd:` of the node config; from a topology, the
topology's `bfd:`).

The LB side is active (it sends from the start, as the router does), echo mode is off (the
router would loop our echo packets back through its forwarding plane: no use for a session
that only guards BGP), and multihop sessions accept only packets that crossed at most one hop
(minimum-ttl 254, the BFD equivalent of the BGP session's GTSM).
"""

from __future__ import annotations

from anycast_ctl.config.node import NodeConfig

PROFILE = "anycast-lb"  # the profile's name on both ends (render/frr.py uses it too)
BFDD_CONF = "bfdd.conf"
MULTIHOP_MINIMUM_TTL = 254  # sent with TTL 255 by a directly linked peer: at most one hop


def profile_lines(interval_ms: int, multiplier: int, indent: str = " ") -> list[str]:
    """The `profile` block of a `bfd` section, with the session timers."""
    inner = indent * 2
    return [
        f"{indent}profile {PROFILE}",
        f"{inner}detect-multiplier {multiplier}",
        f"{inner}receive-interval {interval_ms}",
        f"{inner}transmit-interval {interval_ms}",
        f"{indent}exit",
    ]


def render_bfdd(config: NodeConfig) -> str | None:
    """The node's bfdd.conf, or None when its config turns BFD off."""
    bfd = config.bfd
    if not bfd.enabled:
        return None
    mode = "multihop " if bfd.multihop else ""
    kind = "multihop (RFC 5883)" if bfd.multihop else "single-hop (RFC 5881)"
    lines = [
        f"! {config.node}: bfdd config rendered by anycast-ctl from its node config; "
        "edits are overwritten.",
        f"! BFD for the BGP sessions ExaBGP opens: {bfd.interval_ms} ms x {bfd.multiplier}"
        f" ({bfd.detection_ms} ms to detect), {kind}.",
        "frr defaults traditional",
        f"hostname {config.node}",
        "log stdout informational",
        "!",
        "bfd",
        *profile_lines(bfd.interval_ms, bfd.multiplier),
    ]
    for neighbor in config.bgp.neighbors:
        lines.append(f" peer {neighbor.address} {mode}local-address {neighbor.local_address}")
        lines.append(f"  profile {PROFILE}")
        if bfd.multihop:
            lines.append(f"  minimum-ttl {MULTIHOP_MINIMUM_TTL}")
        lines.append(" exit")
    lines += ["exit", "!", "end"]
    return "\n".join(lines) + "\n"
