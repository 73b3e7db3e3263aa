"""The `status` payload: a pure view of the runtime's state for the control socket."""

from __future__ import annotations

from collections.abc import Mapping

from anycast_ctl.agent.fsm import VipStatus
from anycast_ctl.agent.health import CheckResult
from anycast_ctl.config.node import NodeConfig


def status_payload(
    config: NodeConfig,
    statuses: Mapping[str, VipStatus],
    results: Mapping[str, CheckResult],
    result_since: Mapping[str, float],
    drains: Mapping[str, dict[str, object] | None],
    exabgp: dict[str, object],
) -> dict[str, object]:
    vips = []
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
                }
            )
        vips.append(
            {
                "address": vip.address,
                "state": st.state.value,
                "since": st.since,
                "announced": st.announced,
                "drain": drains.get(vip.address),
                "checks": checks,
            }
        )
    return {"ok": True, "node": config.node, "exabgp": exabgp, "vips": vips}
