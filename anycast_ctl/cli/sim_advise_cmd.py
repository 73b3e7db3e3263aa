"""`anycast-ctl sim advise TOPOLOGY`: what the topology's hashing costs in broken connections,
measured by the simulator, and the fix for each finding."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import cast

import click


def _count(ctx: click.Context, param: click.Parameter, value: object) -> int:
    # The same count syntax and checks as `sim run --flows` (200000, 250k, 1M).
    from anycast_ctl.cli.sim_cmd import Count

    convert = cast(Callable[[object, click.Parameter, click.Context], int], Count().convert)
    return convert(value, param, ctx)


@click.command("advise")
@click.argument("topology", type=click.Path(dir_okay=False))
@click.option(
    "--flows",
    "count",
    default="200k",
    show_default=True,
    callback=_count,
    help="How many flows to generate and route through every variant.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=1,
    show_default=True,
    help="Seed of the flow generator.",
)
@click.option(
    "--flows-file",
    type=click.Path(dir_okay=False),
    help="Read flows from CSV (src,dst,proto,sport,dport[,bytes]) instead.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"findings": [...]} for scripts.')
def advise(topology: str, count: int, seed: int, flows_file: str | None, as_json: bool) -> None:
    """Findings on TOPOLOGY's hashing: tier-seeds-differ, nexthop-order, polarization and the
    disruption of each LB withdrawal, each with the flows at stake with and without its fix."""
    from anycast_ctl.config.topology import load_topology
    from anycast_ctl.sim.advise import advise as run_advice
    from anycast_ctl.sim.advise_report import advise_table, to_json
    from anycast_ctl.sim.run import flow_batches

    topo = load_topology(topology)
    if flows_file is not None:
        batches = list(flow_batches(topo, csv=flows_file))  # read once, routed by every variant
        advice = run_advice(topo, lambda: batches)
    else:
        # The flows `sim run` generates with the same --flows and --seed: the same figures.
        advice = run_advice(topo, lambda: flow_batches(topo, flows=count, seed=seed))
    if as_json:
        click.echo(json.dumps(to_json(advice.findings), indent=2))
    else:
        click.echo(advise_table(advice.topology, advice.flows, advice.findings))
