"""1,000 VIPs on each of 3 LB nodes (default.yaml, its VIP made 1,000: lab/scale.py).

Two figures against issue 9's goals:
- lab up: from `Lab.up` to every VIP in every router's FIB via every node (goal <= 60 s);
- HAProxy SIGKILL on lb1 -> lb1 out of r1's FIB for all 1,000 VIPs (goal p99 <= 0.5 s).
  The FIB is read by polling one route dump of r1 (about 10-30 ms a dump at 1,000 routes),
  so a figure is late by up to one dump; HAProxy is restarted and every VIP back before the
  next run.

Twice: with the topology's second chance (on, as shipped) and with it off. A lab that does
not come up is reported with its reason (and the load), not as a figure: measured
2026-12-02, with the second chance on each agent stalled past the lifeline's 0.6 s as its
peers came up (its table updated for 1,000 VIPs) and the guardian stopped ExaBGP.

--quick: one lab, one kill. Root only. Environment:
    BENCH_SCALE_VIPS   VIPs per LB node (default 1000)
    BENCH_SCALE_RUNS   HAProxy kills (default 10; --quick: 1)
    BENCH_SCALE_TAG    the lab's tag (default acx-bench-scale)
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODE, ROUTER = "lb1", "r1"


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def main(quick: bool = False) -> None:
    if os.geteuid() != 0:
        print("bench_scale: skipped (needs root: network namespaces, FRR, HAProxy, ExaBGP)")
        return
    from anycast_ctl.config.topology import load_topology
    from anycast_ctl.lab.errors import LabError
    from anycast_ctl.lab.observe.routers import prefixes_via
    from anycast_ctl.lab.poll import wait_for
    from anycast_ctl.lab.scale import with_vip_copies
    from anycast_ctl.lab.topology_up import Lab

    copies = int(os.environ.get("BENCH_SCALE_VIPS", "1000"))
    runs = int(os.environ.get("BENCH_SCALE_RUNS", "1" if quick else "10"))
    base = load_topology(REPO / "topologies" / "default.yaml")
    for chance in (True, False):
        shaped = base.model_copy(
            update={"second_chance": base.second_chance.model_copy(update={"enabled": chance})}
        )
        topology = with_vip_copies(shaped, copies)
        label = f"second chance {'on' if chance else 'off'}"
        print(f"{copies} VIPs on each of {len(topology.lbs)} LB nodes, {label}")
        try:
            lab = Lab.up(
                topology, "bench-scale", tag=os.environ.get("BENCH_SCALE_TAG"), timeout=120
            )
        except LabError as exc:
            print(f"  lab up: not measured: {str(exc).splitlines()[0][:300]} ({load()})")
            continue
        print(f"  lab up: {lab.bringup_seconds:.1f} s (goal <= 60 s) ({load()})", flush=True)
        try:
            kills(lab, copies, runs, wait_for, prefixes_via)
        finally:
            lab.down()


def kills(lab, copies: int, runs: int, wait_for, prefixes_via) -> None:
    ns = lab.namespace(ROUTER)
    gateway = str(lab.plan.interface(NODE, ROUTER).ipv4.ip)
    addresses = sorted(v.address for v in lab.topology.vips)
    every = set(addresses)
    out: list[float] = []
    for run in range(runs):
        killed = time.monotonic()
        os.kill(lab.daemon(NODE, "haproxy").pid, signal.SIGKILL)
        try:
            wait_for(lambda: not prefixes_via(ns, addresses, gateway), 10, interval=0.0)
        except TimeoutError:
            print(f"  run {run + 1}: {NODE} not out of {ROUTER}'s FIB within 10 s ({load()})")
            break
        out.append(time.monotonic() - killed)
        print(f"  run {run + 1}: all {copies} out in {out[-1] * 1000:.0f} ms ({load()})")
        lab.start_haproxy(NODE)
        wait_for(lambda: prefixes_via(ns, addresses, gateway) == every, 60, interval=0.1)
    if out:
        print(
            f"  HAProxy kill -> {NODE} out of {ROUTER}'s FIB for all {copies} VIPs: "
            f"p50 {sorted(out)[len(out) // 2] * 1000:.0f} ms, p99 {p99(out) * 1000:.0f} ms "
            f"over {len(out)} run(s) (goal p99 <= 500 ms) ({load()})"
        )
