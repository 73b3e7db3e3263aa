"""Run the simulator: flows in, per-variant results out, streamed chunk by chunk.

`simulate()` runs one topology as configured (or with every router's algorithm or seed
overridden); `compare()` runs every algorithm on the same flows. Flows are generated (or read
from CSV) once per chunk and routed through every variant, before and after every event,
with each distinct hash computed once per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from anycast_ctl.config.topology import Topology
from anycast_ctl.errors import Problem, UserError
from anycast_ctl.sim.algorithms import ALGORITHMS, linux_settings
from anycast_ctl.sim.csvflows import iter_csv_chunks, open_flows
from anycast_ctl.sim.fabric import Event, Fabric, apply, default_events
from anycast_ctl.sim.flows import BLOCK, FlowBatch, FlowMismatch, attach, generate
from anycast_ctl.sim.network import HashCache, Plan, route
from anycast_ctl.sim.results import SimResult, Tally

DEFAULT_FLOWS = 200_000


def csv_batches(topo: Topology, path: str | Path) -> Iterator[FlowBatch]:
    """Flows from a CSV file, chunk by chunk, each matched to its client (by source) and VIP
    (by destination). Streamed: a file of any size runs in bounded memory."""
    source, stream = open_flows(path)
    for chunk in iter_csv_chunks(source, stream):
        for part in chunk.parts:
            try:
                yield attach(topo, part.flows, part.bytes)
            except FlowMismatch as exc:
                raise UserError(
                    [Problem(source, f"row {part.rows[exc.index]}, field {exc.field}", exc.message)]
                ) from None


def flow_batches(
    topo: Topology,
    *,
    flows: int = DEFAULT_FLOWS,
    seed: int = 1,
    zipf: float = 1.5,
    csv: str | Path | None = None,
) -> Iterable[FlowBatch]:
    return (
        csv_batches(topo, csv) if csv is not None else generate(topo, flows, seed=seed, zipf=zipf)
    )


def _chunks(batches: Iterable[FlowBatch], size: int) -> Iterator[FlowBatch]:
    for batch in batches:
        for start in range(0, len(batch), size):
            stop = start + size
            yield FlowBatch(
                batch.flows.chunk(start, stop),
                batch.client[start:stop],
                batch.vip[start:stop],
                batch.bytes[start:stop],
            )


def simulate_variants(
    fabrics: dict[str, Fabric],
    batches: Iterable[FlowBatch],
    events: list[Event],
    chunk: int = BLOCK,
) -> dict[str, SimResult]:
    """Route every chunk through every fabric, before and after each event."""
    tallies = {}
    for name, fabric in fabrics.items():
        base = Plan(fabric)
        tallies[name] = Tally(base, [(e, Plan(apply(fabric, e), base=base)) for e in events])
    for batch in _chunks(batches, chunk):
        cache = HashCache(batch.flows)  # shared: variants and events reuse the same hashes
        for tally in tallies.values():
            before = route(tally.base, batch, cache)
            tally.add(batch, before, [route(plan, batch, cache) for _, plan in tally.events])
    return {name: tally.result() for name, tally in tallies.items()}


def _fabric(topo: Topology, **overrides: Any) -> Fabric:
    try:
        return Fabric.from_topology(topo, **overrides)
    except ValueError as exc:
        raise UserError.single("<arguments>", "", str(exc)) from None


def simulate(
    topo: Topology,
    batches: Iterable[FlowBatch],
    *,
    events: list[Event] | None = None,
    algorithm: str | None = None,
    same_seed: bool = False,
    nexthop_order: dict[str, list[str]] | None = None,
    chunk: int = BLOCK,
) -> SimResult:
    """The topology as configured (optionally one algorithm everywhere, or one seed everywhere)."""
    fabric = _fabric(topo, algorithm=algorithm, same_seed=same_seed, nexthop_order=nexthop_order)
    _check_linux(fabric)
    events = default_events(topo) if events is None else events
    return simulate_variants({"run": fabric}, batches, events, chunk)["run"]


def compare(
    topo: Topology,
    batches: Iterable[FlowBatch],
    *,
    events: list[Event] | None = None,
    same_seed: bool = False,
    chunk: int = BLOCK,
) -> dict[str, SimResult]:
    """Every algorithm on every router, on the same flows and events."""
    fabrics = {a: _fabric(topo, algorithm=a, same_seed=same_seed) for a in ALGORITHMS}
    _check_linux(fabrics["linux"])
    events = default_events(topo) if events is None else events
    return simulate_variants(fabrics, batches, events, chunk)


def _check_linux(fabric: Fabric) -> None:
    """Linux settings the topology allowed for another algorithm may not suit `linux`."""
    problems = []
    for router, h in fabric.hashing.items():
        if h.algorithm == "linux":
            try:
                linux_settings(h).key()
            except ValueError as exc:
                problems.append(
                    Problem("<arguments>", router, f"cannot use the linux model: {exc}")
                )
    if problems:
        raise UserError(problems)
