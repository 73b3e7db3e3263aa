"""`anycast-ctl lab failover`: failure and maintenance experiments on one LB node, under load.

Exit codes: 0 the experiments ran (the goals are reported, not enforced); 2 bad input;
1 the lab failed (did not come up, did not converge again between runs).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from anycast_ctl.errors import UserError
from anycast_ctl.lab.baseline import Implementation
from anycast_ctl.lab.report import SCENARIO_ORDER

# The names, not lab.scenarios itself: every `anycast-ctl` run (a `drain` too) imports this module.
ALL_SCENARIOS = list(SCENARIO_ORDER)
BASELINES = [Implementation.EXABGP_FAST.value, Implementation.EXABGP_DEFAULT.value]


def parse_scenarios(values: tuple[str, ...]) -> list[str]:
    """`--scenarios drain,link-down --scenarios steady` -> in the order given, no repeats."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()] or ALL_SCENARIOS
    unknown = [n for n in names if n not in ALL_SCENARIOS]
    if unknown:
        raise UserError.single(
            "<argument>",
            "--scenarios",
            f"unknown: {', '.join(unknown)} (known: {', '.join(ALL_SCENARIOS)})",
        )
    return list(dict.fromkeys(names))


def pick_node(topology, node: str | None) -> str:
    candidates = [lb.name for lb in topology.lbs if lb.vips]
    if node is None:
        if not candidates:
            raise UserError.single(
                "<argument>", "--node", "the topology has no LB node announcing a VIP"
            )
        return candidates[0]
    if node not in candidates:
        raise UserError.single(
            "<argument>",
            "--node",
            f"{node!r} is not an LB node announcing a VIP ({', '.join(candidates)})",
        )
    return node


@click.command("failover")
@click.argument("name", required=False)
@click.option(
    "--topology",
    "topology_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Bring this topology up as lab 'failover', run, and take it down (instead of NAME).",
)
@click.option("--node", help="The LB node to act on (default: the first LB node announcing a VIP).")
@click.option(
    "--runs", type=click.IntRange(1, 1000), default=3, show_default=True, help="Runs per scenario."
)
@click.option(
    "--scenarios",
    "scenario_opts",
    multiple=True,
    metavar="LIST",
    help=f"Comma-separated, repeatable (default: all: {','.join(ALL_SCENARIOS)}).",
)
@click.option(
    "--baseline",
    is_flag=True,
    help="Also run everything with ExaBGP's healthcheck (fastest and default settings) instead of the agent.",
)
@click.option(
    "--rate",
    type=click.FloatRange(1, 1000),
    default=40.0,
    show_default=True,
    help="Steady-load TLS connections per second during each run.",
)
@click.option(
    "--json", "json_file", type=click.Path(dir_okay=False), help="Write the report as JSON here."
)
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), help="Write a PNG plot here.")
def failover(
    name, topology_file, node, runs, scenario_opts, baseline, rate, json_file, plot_file
) -> None:
    """Kill/hang HAProxy, kill the agent or ExaBGP, drain/undrain, take the link down on one
    LB node; time until every router's FIB drops it (and takes it back), count failed
    connections, compare the flows that moved with the simulator's prediction."""
    from anycast_ctl.cli.lab_cmd import LabFailed
    from anycast_ctl.lab import report
    from anycast_ctl.lab.failover import Settings, run_experiments
    from anycast_ctl.lab.state import LabError
    from anycast_ctl.lab.topology_up import Lab, LabUpError

    if name and topology_file:
        raise UserError.single(
            "<argument>", "NAME", "give either a running lab's NAME or --topology, not both"
        )
    scenarios = parse_scenarios(scenario_opts)
    if os.geteuid() != 0:
        raise LabFailed("the lab needs root (network namespaces, FRR, HAProxy, ExaBGP); try sudo")
    implementations = [Implementation.ANYCAST.value] + (BASELINES if baseline else [])
    say = lambda msg: click.echo(f"  {msg}", err=True)
    started = time.monotonic()
    try:
        if topology_file:
            lab = Lab.up(topology_file, "failover", log=say)
        else:
            lab = Lab.attach(name)
    except LabUpError as exc:
        raise LabFailed(str(exc)) from None
    lb = pick_node(lab.topology, node)
    try:
        measurements = run_experiments(
            lab, implementations, scenarios, lb, Settings(runs=runs, rate=rate), say=say
        )
    except (LabError, TimeoutError) as exc:
        raise LabFailed(f"lab {lab.name}: {exc}") from None
    finally:
        if topology_file:
            lab.down()
    meta = {
        "lab": lab.name,
        "topology": lab.topology.name,
        "node": lb,
        "runs": runs,
        "rate": rate,
        "scenarios": scenarios,
        "implementations": implementations,
        "seconds": round(time.monotonic() - started, 1),
    }
    rows = report.summarize(measurements)
    click.echo(report.format_table(rows))
    click.echo()
    for impl in implementations:
        click.echo(report.format_goals(report.goals(rows, impl), impl))
    if json_file:
        Path(json_file).write_text(json.dumps(report.to_json(measurements, meta), indent=2) + "\n")
        click.echo(f"wrote {json_file}", err=True)
    if plot_file:
        title = f"lab failover: topology {lab.topology.name}, node {lb}, {runs} runs per scenario"
        report.write_plot(measurements, plot_file, title=title)
        click.echo(f"wrote {plot_file}", err=True)
