"""Counting what the routed flows did, chunk by chunk, and the result it adds up to.

`Tally` keeps only counters (per VIP and LB, per router next hop, per event), so a run of any
length needs the memory of one chunk. `Tally.result()` turns them into `SimResult`:

- per LB node: share of flows and of bytes; per VIP: imbalance (max / mean over its LBs);
- per router and VIP: each next hop's share, and polarization (a next hop left unused, or
  one with 1.5x its fair share, while the router has flows to spread);
- per event: the fraction of all flows that change LB, split into `own` (the flows of the
  removed LB, router or link, which have to move; for an added LB, the flows it takes over)
  and `collateral` (moved between LBs the event did not touch), plus `lost` (no path left).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from anycast_ctl.sim.fabric import Event
from anycast_ctl.sim.flows import FlowBatch
from anycast_ctl.sim.network import Plan

POLARIZED_IMBALANCE = 1.5
MIN_FLOWS_PER_NEXTHOP = 50  # fewer flows than this per next hop: too few to call a path unused


@dataclass(frozen=True)
class LbShare:
    name: str
    flows: int
    bytes: float
    flow_share: float
    byte_share: float


@dataclass(frozen=True)
class VipResult:
    name: str
    flows: int
    lbs: list[LbShare]  # the LBs announcing the VIP
    imbalance: float  # max/mean of flows over its LBs
    byte_imbalance: float


@dataclass(frozen=True)
class NextHopShare:
    router: str
    vip: str
    nexthop: str
    flows: int
    share: float  # of the router's flows for this VIP
    fair: float  # share it would get if the spread followed the weights


@dataclass(frozen=True)
class Polarization:
    router: str
    vip: str
    flows: int
    unused: list[str]
    imbalance: float  # max over next hops of share / fair share
    polarized: bool


@dataclass(frozen=True)
class EventResult:
    event: str
    kind: str
    target: str
    moved: float  # fraction of all flows whose LB changes
    own: float
    collateral: float
    lost: float
    moved_bytes: float
    collateral_bytes: float
    imbalance_after: float  # worst VIP imbalance after the event


@dataclass(frozen=True)
class SimResult:
    topology: str
    algorithms: dict[str, str]  # router -> algorithm
    flows: int
    bytes: float
    unroutable: float  # fraction of flows with no path before any event
    lbs: list[LbShare]
    vips: list[VipResult]
    imbalance: float  # worst VIP imbalance
    nexthops: list[NextHopShare]
    polarization: list[Polarization]
    events: list[EventResult]

    @property
    def polarized(self) -> list[Polarization]:
        return [p for p in self.polarization if p.polarized]

    def to_dict(self) -> dict[str, object]:
        rounded: dict[str, object] = _rounded(asdict(self))
        return rounded


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


class Tally:
    def __init__(self, base: Plan, events: list[tuple[Event, Plan]]):
        self.base, self.events = base, events
        self.vips = len(base.fabric.topology.vips)
        self.size = max(
            len(p.nodes) for p in [base, *(p for _, p in events)]
        )  # ids cover added LBs
        self.flows, self.bytes, self.unroutable = 0, 0.0, 0
        self.lb_flows = np.zeros((self.vips, self.size))
        self.lb_bytes = np.zeros((self.vips, self.size))
        self.edges = np.zeros(self.vips * self.size * self.size)
        self.ev = np.zeros(
            (len(events), 6)
        )  # moved, own, collateral, lost, moved bytes, collateral bytes
        self.ev_lb = np.zeros((len(events), self.vips, self.size))

    def add(self, batch: FlowBatch, hops: np.ndarray, event_hops: list[np.ndarray]) -> None:
        lb = hops[-1]
        ok = lb >= 0
        self.flows += len(batch)
        self.bytes += float(batch.bytes.sum())
        self.unroutable += int((~ok).sum())
        flat = batch.vip[ok] * self.size + lb[ok]
        self.lb_flows += np.bincount(flat, minlength=self.vips * self.size).reshape(self.vips, -1)
        self.lb_bytes += np.bincount(
            flat, weights=batch.bytes[ok], minlength=self.vips * self.size
        ).reshape(self.vips, -1)
        for t in range(hops.shape[0] - 1):
            a, b = hops[t], hops[t + 1]
            step = (a >= 0) & (b >= 0)
            key = (batch.vip[step] * self.size + a[step]) * self.size + b[step]
            self.edges += np.bincount(key, minlength=len(self.edges))
        for i, ((event, plan), after) in enumerate(zip(self.events, event_hops, strict=True)):
            new = after[-1]
            moved = ok & (new >= 0) & (new != lb)
            lost = ok & (new < 0)
            own = moved & self._own(event, plan, batch, hops, new)
            self.ev[i] += [
                moved.sum(),
                own.sum(),
                (moved & ~own).sum(),
                lost.sum(),
                batch.bytes[moved].sum(),
                batch.bytes[moved & ~own].sum(),
            ]
            got = new >= 0
            self.ev_lb[i] += np.bincount(
                batch.vip[got] * self.size + new[got], minlength=self.vips * self.size
            ).reshape(self.vips, -1)

    def _own(
        self, event: Event, plan: Plan, batch: FlowBatch, hops: np.ndarray, new_lb: np.ndarray
    ) -> np.ndarray:
        """Flows the event takes away from their path (or, for an added LB, gives to it)."""
        ids = plan.node_id
        if event.kind == "withdraw":
            return np.asarray(hops[-1] == ids[event.target])
        if event.kind == "add":
            return np.asarray(new_lb == ids[event.target])
        if event.kind == "router":
            return np.asarray((hops == ids[event.target]).any(axis=0))
        clients = [c.name for c in plan.fabric.topology.clients]
        client = next((x for x in event.ends if x in clients), None)
        if client is not None:  # a client's access link: all its flows
            return np.asarray(batch.client == clients.index(client))
        a, b = (ids[x] for x in event.ends)
        pairs = ((hops[:-1] == a) & (hops[1:] == b)) | ((hops[:-1] == b) & (hops[1:] == a))
        return np.asarray(pairs.any(axis=0))

    # ------------------------------------------------------------ result
    def result(self) -> SimResult:
        fabric, topo = self.base.fabric, self.base.fabric.topology
        total = max(self.flows, 1)
        nodes = self.base.nodes
        lb_ids = range(self.base.first_lb_id, len(nodes))
        lbs = [
            _share(
                nodes[i], self.lb_flows[:, i].sum(), self.lb_bytes[:, i].sum(), total, self.bytes
            )
            for i in lb_ids
        ]
        vips = []
        for v, vip in enumerate(topo.vips):
            ids = _serving(self.base, v)
            f, b = self.lb_flows[v], self.lb_bytes[v]
            shares = [
                _share(nodes[i], f[i], b[i], max(f.sum(), 1), max(b.sum(), 1e-12)) for i in ids
            ]
            vips.append(
                VipResult(vip.name, int(f.sum()), shares, _imbalance(f[ids]), _imbalance(b[ids]))
            )
        nexthops, polarization = self._nexthops()
        events = []
        for i, (event, plan) in enumerate(self.events):
            moved, own, coll, lost, mb, cb = self.ev[i]
            worst = max(
                (_imbalance(self.ev_lb[i, v, _serving(plan, v)]) for v in range(self.vips)),
                default=1.0,
            )
            events.append(
                EventResult(
                    event.label,
                    event.kind,
                    event.target,
                    moved / total,
                    own / total,
                    coll / total,
                    lost / total,
                    mb / max(self.bytes, 1e-12),
                    cb / max(self.bytes, 1e-12),
                    worst,
                )
            )
        return SimResult(
            topology=topo.name,
            algorithms={r: str(fabric.hashing[r].algorithm) for r in fabric.routers},
            flows=self.flows,
            bytes=self.bytes,
            unroutable=self.unroutable / total,
            lbs=lbs,
            vips=vips,
            imbalance=max(v.imbalance for v in vips),
            nexthops=nexthops,
            polarization=polarization,
            events=events,
        )

    def _nexthops(self) -> tuple[list[NextHopShare], list[Polarization]]:
        edges = self.edges.reshape(self.vips, self.size, self.size)
        shares, polar = [], []
        for router, per_vip in self.base.hops.items():
            rid = self.base.node_id[router]
            for v, hop in per_vip.items():
                counts = edges[v, rid, hop.member_ids]
                flows = counts.sum()
                weights = np.array(hop.selector.weights, dtype=float)
                fair = weights / weights.sum()
                got = counts / max(flows, 1)
                vip = self.base.fabric.topology.vips[v].name
                for m, c, g, f in zip(hop.selector.members, counts, got, fair, strict=True):
                    shares.append(NextHopShare(router, vip, m, int(c), float(g), float(f)))
                if len(counts) < 2:
                    continue
                enough = flows >= MIN_FLOWS_PER_NEXTHOP * len(counts)
                unused = (
                    [m for m, c in zip(hop.selector.members, counts, strict=True) if c == 0]
                    if enough
                    else []
                )
                worst = float((got / fair).max()) if flows else 0.0
                polar.append(
                    Polarization(
                        router,
                        vip,
                        int(flows),
                        unused,
                        worst,
                        bool(enough and (unused or worst >= POLARIZED_IMBALANCE)),
                    )
                )
        return shares, polar


def _serving(plan: Plan, vip: int) -> list[int]:
    """LB ids that can receive the VIP's flows: announcing it and next hop of some router."""
    ids = {
        int(i) for per_vip in plan.hops.values() if vip in per_vip for i in per_vip[vip].member_ids
    }
    return sorted(i for i in ids if i >= plan.first_lb_id)


def _share(name: str, flows: float, byte_count: float, total: float, total_bytes: float) -> LbShare:
    return LbShare(
        name,
        int(flows),
        float(byte_count),
        float(flows / max(total, 1)),
        float(byte_count / max(total_bytes, 1e-12)),
    )


def _imbalance(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    if not len(values) or values.mean() == 0:
        return 1.0
    return float(values.max() / values.mean())
