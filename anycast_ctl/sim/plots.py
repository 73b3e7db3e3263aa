"""PNG and SVG plots of simulator results (matplotlib, headless Agg backend).

- shares: each LB's share of flows (bars) per algorithm, against the fair share;
- disruption: per event and algorithm, the flows that change LB, own vs collateral;
- nexthops: each router's spread over its next hops, where polarization shows as empty bars.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: plots are files
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from anycast_ctl.sim.results import SimResult

FORMATS = ("png", "svg")


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def plot_shares(results: dict[str, SimResult], out_dir: Path) -> list[Path]:
    first = next(iter(results.values()))
    names = [s.name for s in first.lbs]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names) * max(1, len(results) / 2)), 4))
    width = 0.8 / len(results)
    x = np.arange(len(names))
    for i, (algo, r) in enumerate(results.items()):
        ax.bar(
            x + i * width - 0.4 + width / 2, [100 * s.flow_share for s in r.lbs], width, label=algo
        )
    ax.axhline(100 / max(len(names), 1), color="grey", linestyle="--", linewidth=1, label="1/N")
    ax.set_xticks(x, names)
    ax.set_ylabel("share of flows (%)")
    ax.set_title(f"{first.topology}: flows per LB node ({first.flows} flows)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out_dir, "shares")


def plot_disruption(results: dict[str, SimResult], out_dir: Path) -> list[Path]:
    first = next(iter(results.values()))
    events = [e.event for e in first.events]
    fig, axes = plt.subplots(
        1, max(len(events), 1), figsize=(3.2 * max(len(events), 1), 4), sharey=True, squeeze=False
    )
    algos = list(results)
    for j, event in enumerate(events):
        ax = axes[0][j]
        own = [100 * results[a].events[j].own for a in algos]
        coll = [100 * results[a].events[j].collateral for a in algos]
        lost = [100 * results[a].events[j].lost for a in algos]
        ax.bar(algos, own, label="own (unavoidable)", color="tab:blue")
        ax.bar(algos, coll, bottom=own, label="collateral", color="tab:red")
        ax.bar(algos, lost, bottom=np.add(own, coll), label="lost (no path)", color="tab:grey")
        ax.set_title(event, fontsize="medium")
        ax.tick_params(axis="x", labelrotation=60)
    axes[0][0].set_ylabel("flows that change LB (% of all)")
    axes[0][-1].legend(fontsize="small")
    fig.suptitle(f"{first.topology}: disruption per event and algorithm")
    return _save(fig, out_dir, "disruption")


def plot_nexthops(result: SimResult, out_dir: Path, stem: str = "nexthops") -> list[Path]:
    """One bar per router next hop; a polarized router's bars are red, the line its fair share."""
    polarized = {(p.router, p.vip) for p in result.polarized}
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(result.nexthops)), 4))
    x, ticks, labels, previous = 0.0, [], [], None
    for h in result.nexthops:
        if previous is not None and (h.router, h.vip) != previous:
            x += 0.6  # a gap between routers
        previous = (h.router, h.vip)
        ax.bar(x, 100 * h.share, color="tab:red" if previous in polarized else "tab:blue")
        ax.plot([x - 0.4, x + 0.4], [100 * h.fair] * 2, color="black", linewidth=1)
        ticks.append(x)
        labels.append(f"{h.router}>{h.nexthop}")
        x += 1
    ax.set_xticks(ticks, labels, rotation=70, fontsize="small")
    ax.set_ylabel("share of the router's flows (%)")
    ax.set_title(
        f"{result.topology}: next-hop spread per router (red = polarized; line = fair share)"
    )
    return _save(fig, out_dir, stem)
