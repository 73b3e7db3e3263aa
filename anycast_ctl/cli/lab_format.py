"""Tables for `anycast-ctl lab ...` (pure: dicts and results in, text out)."""

from __future__ import annotations

from collections import Counter

from anycast_ctl.lab.experiments.traffic import TrafficResult
from anycast_ctl.lab.net.cleanup import CleanupReport

MAX_LISTED = 20


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def routers_table(status: dict) -> str:
    rows = []
    for router, info in status["routers"].items():
        if "error" in info:
            rows.append([router, "?", "?", info["error"][:60]])
            continue
        sessions = info["sessions"]
        up = sum(1 for s in sessions.values() if s == "Established")
        down = [f"{p}={s}" for p, s in sessions.items() if s != "Established"]
        fib = "; ".join(
            f"{vip} -> {' '.join(hops) or '(none)'}" for vip, hops in info["fib"].items()
        )
        rows.append([router, f"{up}/{len(sessions)}", fib, " ".join(down)])
    return table(rows, ["router", "bgp up", "FIB next hops (kernel order)", "not established"])


def agents_table(status: dict) -> str:
    rows = []
    for lb, answer in status["agents"].items():
        if not answer.get("ok"):
            rows.append([lb, "-", "-", "-", answer.get("error", "no answer")[:70]])
            continue
        for vip in answer.get("vips", []):
            route = "announced" if vip.get("announced") else "withdrawn"
            drain = vip.get("drain")
            why = f"{drain.get('by', '?')}: {drain.get('reason', '')}" if drain else "-"
            rows.append([lb, vip["address"], vip["state"], route, why])
    return table(rows, ["LB node", "VIP", "state", "route", "drained by"])


def status_text(status: dict) -> str:
    dead = [
        f"{name}@{node}"
        for node, ds in status["daemons"].items()
        for name, d in ds.items()
        if not d["running"]
    ]
    missing = [node for node, ok in status["namespaces"].items() if not ok]
    alive = sum(d["running"] for ds in status["daemons"].values() for d in ds.values())
    total = sum(len(ds) for ds in status["daemons"].values())
    parts = [
        f"lab {status['name']} (topology {status['topology']}, tag {status['tag']})",
        f"namespaces: {len(status['namespaces']) - len(missing)}/{len(status['namespaces'])}"
        + (f" (missing: {', '.join(missing)})" if missing else ""),
        f"daemons running: {alive}/{total}"
        + (f" (not running: {', '.join(dead)})" if dead else ""),
        "",
        routers_table(status),
        "",
        agents_table(status),
        "",
        "converged"
        if status["converged"]
        else "NOT converged:\n  " + "\n  ".join(status["problems"]),
    ]
    return "\n".join(parts)


def cleanup_text(name: str, report: CleanupReport) -> str:
    procs = len(report.terminated) + len(report.killed)
    killed = f" ({len(report.killed)} needed SIGKILL)" if report.killed else ""
    lines = [
        f"lab {name}: removed {len(report.namespaces)} namespaces, {procs} processes{killed}, "
        f"{len(report.files)} files/dirs, {len(report.unmounted)} mounts"
    ]
    if report.namespaces:
        lines.append("  namespaces: " + " ".join(report.namespaces))
    return "\n".join(lines)


def traffic_text(result: TrafficResult) -> str:
    agree, total = result.agreement()
    shares, predicted = result.shares(), result.predicted_shares()
    ok = total - len(result.failed())
    rows = [
        [
            lb,
            str(shares.get(lb, 0)),
            f"{100 * shares.get(lb, 0) / max(1, ok):.1f}%",
            str(predicted.get(lb, 0)),
        ]
        for lb in sorted(set(shares) | set(predicted))
    ]
    out = [
        table(rows, ["LB node", "connections", "share", "predicted"]),
        "",
        f"{ok}/{total} connections ok (TLS verified end to end) in {result.seconds:.2f}s",
        f"{agree}/{total} flows as predicted by the simulator",
    ]
    reasons = Counter(f.reason for f in result.failed())
    if reasons:
        out.append("failed by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    for title, flows in (("mismatches", result.mismatches()), ("failed", result.failed())):
        if flows:
            out.append(f"{title} ({len(flows)}):")
            for f in flows[:MAX_LISTED]:
                if f.ok:
                    where = f"went to {f.lb}, predicted {f.predicted}"
                else:
                    where = f"{f.reason}: {f.error}" if f.reason else str(f.error)
                out.append(f"  {f.src}:{f.sport} -> {f.dst}:{f.dport} ({f.client}): {where}")
            if len(flows) > MAX_LISTED:
                out.append(f"  ... and {len(flows) - MAX_LISTED} more (--json lists all)")
    return "\n".join(out)
