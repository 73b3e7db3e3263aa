"""The `status` response as a table for people (pure: `now` is passed in).

Tolerant of missing fields: an older or newer agent may send more or less, and a status
display must never crash on it.
"""

from __future__ import annotations

import math
import time

# Timestamps an agent can send: after 1970 and before the year 5138 (what localtime() takes).
_MAX_TIME = 1e11


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


def _damping(damping: dict | None, now: float) -> str:
    """'-', 'penalty 812', or 'SUPPRESSED until 22:10:04 (in 14s), penalty 2150'."""
    if not isinstance(damping, dict):
        return "-"
    penalty = damping.get("penalty") or 0
    reuse_at = damping.get("reuse_at")
    if damping.get("suppressed") and isinstance(reuse_at, (int, float)):
        wait = max(0, int(reuse_at - now + 0.999))
        stamp = time.strftime("%H:%M:%S", time.localtime(reuse_at))
        return f"SUPPRESSED until {stamp} (in {wait}s), penalty {penalty:.0f}"
    return f"penalty {penalty:.0f}" if penalty >= 1 else "-"


def _latency(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _exabgp_line(node: str, exabgp: dict, now: float) -> str:
    alive = exabgp.get("alive")
    state = "alive" if alive else ("NOT alive" if alive is False else "unknown")
    last = exabgp.get("last_line_at")
    if isinstance(exabgp.get("last_line_age_s"), (int, float)):
        last = now - exabgp["last_line_age_s"]  # the agent's own measure: no clock skew
    line = f"node {node}   exabgp: {state}, last line {age(last, now)}"
    peers = exabgp.get("peers") or {}
    if peers:
        line += "   peers: " + ", ".join(
            f"{p} {'up' if up else 'DOWN'}" for p, up in sorted(peers.items())
        )
    return line


def _connections_line(payload: dict) -> str | None:
    """'connections left: 3 (192.0.2.10/32 2, 2001:db8::10/128 1)'; None from an agent that
    does not count them."""
    if "connections_left" not in payload:
        return None
    left = payload.get("connections_left")
    if not isinstance(left, int) or isinstance(left, bool):
        return f"connections left: unknown ({payload.get('connections_error') or 'not counted'})"
    by_vip = payload.get("connections_left_by_vip")
    parts = []
    if isinstance(by_vip, dict):
        parts = [f"{vip} {n}" for vip, n in by_vip.items() if isinstance(n, int) and n]
    return f"connections left: {left}" + (f" ({', '.join(parts)})" if parts else "")


def format_status(payload: dict, now: float) -> str:
    lines = [_exabgp_line(str(payload.get("node", "?")), payload.get("exabgp") or {}, now)]
    connections = _connections_line(payload)
    lines += ([connections] if connections else []) + [""]
    vips = payload.get("vips") or []
    if not vips:
        return "\n".join(lines + ["no VIPs configured"])
    header = ["VIP", "STATE", "SINCE", "ANNOUNCED", "DAMPING", "DRAIN"]
    rows = [
        [
            str(vip.get("address", "?")),
            str(vip.get("state", "?")),
            moment(vip.get("since"), now),
            "yes" if vip.get("announced") else "no",
            _damping(vip.get("damping"), now),
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


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def status_shape_problems(payload: dict) -> list[tuple[str, str]]:
    """What in a status answer the table cannot show, as (field, message): an agent of
    another version, or something else on the socket, must give one clear line, not a crash."""
    problems: list[tuple[str, str]] = []

    def want(value: object, where: str, types: tuple[type, ...], what: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, types) or (bool in types) != isinstance(value, bool):
            problems.append((where, f"expected {what}, got {_kind(value)}"))
            return False
        return True

    def moment_ok(value: object, where: str) -> None:
        if want(value, where, (int, float), "a time in seconds"):
            assert isinstance(value, int | float)
            if not (math.isfinite(value) and 0 <= value < _MAX_TIME):
                problems.append((where, f"{value!r} is not a time"))

    exabgp = payload.get("exabgp")
    if want(exabgp, "exabgp", (dict,), "an object"):
        assert isinstance(exabgp, dict)
        want(exabgp.get("alive"), "exabgp.alive", (bool,), "true/false")
        moment_ok(exabgp.get("last_line_at"), "exabgp.last_line_at")
        want(exabgp.get("peers"), "exabgp.peers", (dict,), "an object")
    vips = payload.get("vips")
    if not want(vips, "vips", (list,), "a list"):
        return problems
    assert isinstance(vips, list)
    for i, vip in enumerate(vips):
        if not want(vip, f"vips[{i}]", (dict,), "an object"):
            continue
        moment_ok(vip.get("since"), f"vips[{i}].since")
        drain = vip.get("drain")
        if drain and want(drain, f"vips[{i}].drain", (dict,), "an object"):
            moment_ok(drain.get("at"), f"vips[{i}].drain.at")
        checks = vip.get("checks")
        if want(checks, f"vips[{i}].checks", (list,), "a list"):
            for j, check in enumerate(checks):
                where = f"vips[{i}].checks[{j}]"
                if want(check, where, (dict,), "an object"):
                    moment_ok(check.get("since"), f"{where}.since")
                    latency = check.get("latency_ms")
                    if want(latency, f"{where}.latency_ms", (int, float), "a number") and not (
                        math.isfinite(latency)
                    ):
                        problems.append((f"{where}.latency_ms", f"{latency!r} is not finite"))
    return problems
