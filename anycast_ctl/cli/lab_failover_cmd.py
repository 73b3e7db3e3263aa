"""`anycast-ctl lab failover`: failure and maintenance experiments on one LB node, under load.

Exit codes: 0 the experiments ran (the goals are reported, not enforced); 2 bad input;
1 the lab failed (did not come up, did not converge again between runs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from anycast_ctl.cli.lab_support import need_root
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab.experiments import failover_report
from anycast_ctl.lab.experiments.baseline import Implementation
from anycast_ctl.lab.experiments.scenario_names import ROUTER_SCENARIOS, Scenario

# The names only (pure modules): `anycast-ctl lab --help` need not import the experiments.
ALL_SCENARIOS = [s.value for s in Scenario]
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


def pick_node(topology: Topology, node: str | None) -> str:
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


def _say(msg: str) -> None:
    click.echo(f"  {msg}", err=True)


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
    "--router",
    help="The router that router-kill and router-drain act on (default: the first router "
    "another router of its tier can stand in for).",
)
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
    help="Also run everything with ExaBGP's healthcheck (fastest and default settings) "
    "instead of the agent.",
)
@click.option(
    "--rate",
    type=click.FloatRange(1, 1000),
    default=40.0,
    show_default=True,
    help="Steady-load TLS connections per second during each run.",
)
@click.option(
    "--long-lived",
    type=click.IntRange(0, 2000),
    default=200,
    show_default=True,
    help="TLS connections held open through each event, each exchanging a line every 50 ms "
    "(0: none); the report counts the ones the event broke against the simulator's prediction.",
)
@click.option(
    "--second-chance",
    "second_chance",
    type=click.Choice(["on", "off"]),
    default=None,
    help="on: the lab loads every LB node's second-chance table itself (per-flow entries); "
    "off: the lab removes every table before each run. Default: whatever the agent does.",
)
@click.option(
    "--json", "json_file", type=click.Path(dir_okay=False), help="Write the report as JSON here."
)
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), help="Write a PNG plot here.")
def failover(
    name,
    topology_file,
    node,
    router,
    runs,
    scenario_opts,
    baseline,
    rate,
    long_lived,
    second_chance,
    json_file,
    plot_file,
) -> None:
    """Kill/hang HAProxy, kill the agent or ExaBGP, drain/undrain, take the link down on one
    LB node, kill or drain a router; time until every router's FIB drops it (and takes it
    back), count failed new connections and broken long-lived ones, compare the flows that
    moved with the simulator's prediction."""
    from anycast_ctl.lab.experiments.failover import run_experiments
    from anycast_ctl.lab.experiments.failover_settings import Settings
    from anycast_ctl.lab.experiments.router_acts import pick_router
    from anycast_ctl.lab.topology_up import Lab

    if name and topology_file:
        raise UserError.single(
            "<argument>", "NAME", "give either a running lab's NAME or --topology, not both"
        )
    scenarios = parse_scenarios(scenario_opts)
    wants_router = any(Scenario(s) in ROUTER_SCENARIOS for s in scenarios)
    if topology_file:
        topology = load_topology(topology_file)
        pick_node(topology, node)
        if wants_router:
            pick_router(topology, router)
    need_root()
    implementations = [Implementation.ANYCAST.value] + (BASELINES if baseline else [])
    started = time.monotonic()
    lab = Lab.up(topology_file, "failover", log=_say) if topology_file else Lab.attach(name)
    try:
        lb = pick_node(lab.topology, node)
        chosen = pick_router(lab.topology, router) if wants_router else None
        measurements = run_experiments(
            lab,
            implementations,
            scenarios,
            lb,
            Settings(
                runs=runs,
                rate=rate,
                long_lived=long_lived,
                second_chance=None if second_chance is None else second_chance == "on",
            ),
            say=_say,
            router=chosen,
        )
    finally:
        if topology_file:
            lab.down()
    meta = {
        "lab": lab.name,
        "topology": lab.topology.name,
        "node": lb,
        "runs": runs,
        "rate": rate,
        "long_lived": long_lived,
        "second_chance": second_chance or "deployment",
        **({"router": chosen} if chosen else {}),
        "scenarios": scenarios,
        "implementations": implementations,
        "seconds": round(time.monotonic() - started, 1),
    }
    rows = failover_report.summarize(measurements)
    click.echo(failover_report.format_table(rows))
    click.echo()
    for impl in implementations:
        click.echo(failover_report.format_goals(failover_report.goals(rows, impl), impl))
    if json_file:
        report = failover_report.to_json(measurements, meta)
        Path(json_file).write_text(json.dumps(report, indent=2) + "\n")
        click.echo(f"wrote {json_file}", err=True)
    if plot_file:
        title = f"lab failover: topology {lab.topology.name}, node {lb}, {runs} runs per scenario"
        failover_report.write_plot(measurements, plot_file, title=title)
        click.echo(f"wrote {plot_file}", err=True)
