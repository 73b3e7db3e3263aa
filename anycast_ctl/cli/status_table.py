"""The `status` response as a table for people (pure: `now` is passed in).

Tolerant of missing fields: an older or newer agent may send more or less, and a status
display must never crash on it.
"""

from __future__ import annotations

import time


def age(then: float | None, now: float) -> str:
    """1700000000.0 -> '4m12s ago'."""
    if then is None:
        return "-"
    seconds = max(0, int(now - then))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s ago"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m ago"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h ago"


def moment(then: float | None, now: float) -> str:
    """Local wall-clock time and how long ago, e.g. '2023-11-14 22:13:20 (4m12s ago)'."""
    if then is None:
        return "-"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(then))} ({age(then, now)})"


def columns(rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _drain(drain: dict | None, now: float) -> str:
    if not drain:
        return "-"
    who = f"{drain.get('by', '?')} (uid {drain.get('uid', '?')})"
    return f"by {who} {age(drain.get('at'), now)}: {drain.get('reason', '')}"


def _latency(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _exabgp_line(node: str, exabgp: dict, now: float) -> str:
    alive = exabgp.get("alive")
    state = "alive" if alive else ("NOT alive" if alive is False else "unknown")
    line = f"node {node}   exabgp: {state}, last line {age(exabgp.get('last_line_at'), now)}"
    peers = exabgp.get("peers") or {}
    if peers:
        line += "   peers: " + ", ".join(
            f"{p} {'up' if up else 'DOWN'}" for p, up in sorted(peers.items())
        )
    return line


def format_status(payload: dict, now: float) -> str:
    lines = [_exabgp_line(str(payload.get("node", "?")), payload.get("exabgp") or {}, now), ""]
    vips = payload.get("vips") or []
    if not vips:
        return "\n".join(lines + ["no VIPs configured"])
    header = ["VIP", "STATE", "SINCE", "ANNOUNCED", "DRAIN"]
    rows = [
        [
            str(vip.get("address", "?")),
            str(vip.get("state", "?")),
            moment(vip.get("since"), now),
            "yes" if vip.get("announced") else "no",
            _drain(vip.get("drain"), now),
        ]
        for vip in vips
    ]
    vip_lines = columns([header] + rows)
    # Check rows of every VIP share one set of column widths, so they line up down the page.
    check_rows = [
        [
            f"check {c.get('name', '?')}",
            str(c.get("health", "?")),
            _latency(c.get("latency_ms")),
            f"since {age(c.get('since'), now)}",
            str(c.get("detail", "")),
        ]
        for vip in vips
        for c in vip.get("checks") or []
    ]
    check_lines = iter(columns(check_rows, indent="    ") if check_rows else [])
    lines.append(vip_lines[0])
    for vip, vip_line in zip(vips, vip_lines[1:], strict=True):
        lines.append(vip_line)
        lines.extend(next(check_lines) for _ in vip.get("checks") or [])
    return "\n".join(lines)
