"""The `status` payload: a pure view of the runtime's state for the control socket."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TypedDict

from anycast_ctl.agent.damping import Damping
from anycast_ctl.agent.drainstore import DrainState
from anycast_ctl.agent.fsm import Transition, VipStatus
from anycast_ctl.agent.health import CheckResult
from anycast_ctl.config.node import NodeConfig


def exabgp_status(
    alive: bool, since_last_line: float | None, peers: Mapping[str, bool], now: float
) -> dict[str, object]:
    """ExaBGP's side of the status. The speaker measures time on the monotonic clock, which
    means nothing outside this process: send the age, and the wall time it corresponds to."""
    return {
        "alive": alive,
        "last_line_at": None if since_last_line is None else now - since_last_line,
        "last_line_age_s": None if since_last_line is None else round(since_last_line, 3),
        "peers": dict(peers),
    }


class DampingView(TypedDict):
    penalty: float
    suppressed: bool
    reuse_at: float | None  # while suppressed: when it may be announced again (wall time)


def damping_view(status: VipStatus, damping: Damping | None, now: float) -> DampingView:
    """The VIP's flap damping: its penalty now, and while suppressed, when it may come back."""
    return {
        "penalty": round(status.penalty_now(damping, now), 1),
        "suppressed": status.suppressed and damping is not None,
        "reuse_at": status.reuse_at(damping),
    }


def reuse_note(reuse_at: float | None) -> str:
    """For the audit log: when a suppressed VIP may be announced again (local time)."""
    if reuse_at is None:
        return ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(reuse_at))
    return f"; suppressed until {stamp} ({reuse_at:.1f}), then announced if healthy"


def transition_line(address: str, t: Transition) -> str:
    """The audit log's line for a state change."""
    return f"vip {address}: {t.old} -> {t.new} ({t.reason}){reuse_note(t.reuse_at)}"


def certificate_view(extra: Mapping[str, object]) -> dict[str, object] | None:
    """A TLS check's certificate as the node's policy judged it: level "ok", "warn" (expiring,
    still healthy) or "withdraw", days left and this node's thresholds; None for other
    checks (no days left in their result)."""
    if "days_left" not in extra:
        return None
    return {
        "level": extra.get("certificate", "ok"),
        "days_left": extra["days_left"],
        "warn_days": extra.get("warn_days"),
        "withdraw_days": extra.get("withdraw_days"),
        "not_after": extra.get("not_after"),
    }


def _tls(result: CheckResult) -> bool:
    return "days_left" in result.extra


def status_payload(
    config: NodeConfig,
    statuses: Mapping[str, VipStatus],
    results: Mapping[str, CheckResult],
    result_since: Mapping[str, float],
    drain_state: DrainState,
    exabgp: dict[str, object],
    *,
    now: float,
    damping: Damping | None = None,
) -> dict[str, object]:
    vips = []
    drains = {}
    for vip in config.vips:
        record = drain_state.is_drained(vip.address)
        drains[vip.address] = record.as_dict() if record is not None else None
    for vip in config.vips:
        st = statuses[vip.address]
        checks = []
        for name in vip.checks:
            r = results.get(name)
            checks.append(
                {
                    "name": name,
                    "health": r.health.value if r else "unknown",
                    "detail": r.detail if r else "not run yet",
                    "latency_ms": round(r.latency * 1000, 3) if r else None,
                    "since": result_since.get(name),
                    **({"extra": dict(r.extra)} if r and r.extra else {}),
                    **({"certificate": certificate_view(r.extra)} if r and _tls(r) else {}),
                }
            )
        vips.append(
            {
                "address": vip.address,
                "state": st.state.value,
                "since": st.since,
                "announced": st.announced,
                "drain": drains.get(vip.address),
                # soft failures counted toward fall (in the window, if there is one)
                "soft_failures": st.streak if st.state.value != "rising" else 0,
                "damping": damping_view(st, damping, now),
                "checks": checks,
            }
        )
    return {"ok": True, "node": config.node, "exabgp": exabgp, "vips": vips}


def connections_view(by_vip: Mapping[str, int] | None, error: str = "") -> dict[str, object]:
    """`connections_left` (established TCP connections to this node's VIPs, summed) and the
    per-VIP counts; when they could not be read, None and why (an unknown count is not 0:
    `drain --wait` must not tell an operator HAProxy may stop)."""
    if by_vip is None:
        return {"connections_left": None, "connections_left_by_vip": {}, "connections_error": error}
    return {"connections_left": sum(by_vip.values()), "connections_left_by_vip": dict(by_vip)}
