"""`anycast-ctl demo` (`make demo`): the whole system on the default topology, narrated.

As root: bring the topology up as real namespaces (FRR, HAProxy, ExaBGP + agent, TLS backends),
send TLS traffic and compare every flow with the simulator, kill HAProxy on one LB node,
drain and undrain it, print the report, and tear everything down. Not root: say what is
needed and run the simulator part only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


@click.command("demo")
@click.option(
    "--topology",
    "topology_file",
    type=click.Path(exists=True, dir_okay=False),
    default=str(DEFAULT_TOPOLOGY),
    show_default=True,
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="out/demo",
    show_default=True,
    help="Where the report (JSON, PNG) goes.",
)
@click.option("--connections", type=click.IntRange(10, 5000), default=300, show_default=True)
def demo(topology_file: str, out_dir: str, connections: int) -> None:
    """Run anycast-ctl end to end on a topology (default: one router, three LB nodes)."""
    from anycast_ctl.cli import cli

    if os.geteuid() != 0:
        click.echo(
            "The lab needs root: it creates network namespaces and runs FRR, HAProxy and ExaBGP\n"
            "in them (sudo make demo). Running the simulator part only."
        )
        _step(
            f"Simulator: how {Path(topology_file).name} spreads flows, and what moves when a node"
            " leaves"
        )
        cli.main(["sim", "run", topology_file, "--plot", out_dir], standalone_mode=False)
        return
    _run_lab(topology_file, Path(out_dir), connections)


def _run_lab(topology_file: str, out: Path, connections: int) -> None:
    import json

    from anycast_ctl.cli.lab_format import traffic_text
    from anycast_ctl.lab.errors import LabError
    from anycast_ctl.lab.experiments import failover_report
    from anycast_ctl.lab.experiments.failover import run_experiments
    from anycast_ctl.lab.experiments.failover_settings import Settings
    from anycast_ctl.lab.topology_up import Lab

    def say(msg: str) -> None:
        click.echo(f"  {msg}")

    started = time.monotonic()
    _step(
        f"Bring-up: {topology_file} as network namespaces"
        " (FRR, HAProxy, ExaBGP + agent, TLS backends)"
    )
    lab = Lab.up(topology_file, "demo", log=say)
    try:
        click.echo(f"  converged in {lab.bringup_seconds:.1f}s")
        for router in lab.topology.routers:
            for vip in lab.topology.vips:
                via = ", ".join(lab.fib_nexthops(router.name, vip.name))
                click.echo(f"  {router.name} FIB: {vip.address} via {via}")

        _step(
            f"Traffic: {connections} TLS connections through the VIP, each flow checked against"
            " the simulator"
        )
        click.echo(traffic_text(lab.traffic(connections)))

        lb = next(lb.name for lb in lab.topology.lbs if lb.vips)
        _step(f"Failover and maintenance on {lb}: HAProxy killed, then a drain and an undrain")
        measurements = run_experiments(
            lab, ["anycast"], ["haproxy-kill", "drain"], lb, Settings(runs=1), say=say
        )
        _step("Report")
        rows = failover_report.summarize(measurements)
        click.echo(failover_report.format_table(rows))
        click.echo(failover_report.format_goals(failover_report.goals(rows, "anycast"), "anycast"))
        out.mkdir(parents=True, exist_ok=True)
        meta = {"topology": lab.topology.name, "node": lb, "connections": connections}
        (out / "report.json").write_text(
            json.dumps(failover_report.to_json(measurements, meta), indent=2) + "\n"
        )
        failover_report.write_plot(
            measurements, str(out / "failover.png"), title=f"demo: {lab.topology.name}, node {lb}"
        )
        click.echo(f"  wrote {out / 'report.json'} and {out / 'failover.png'}")
    finally:
        _step("Teardown")
        lab.down()
        left = lab.leftovers()
        click.echo(f"  removed everything the lab started{'' if not left else f'; LEFT: {left}'}")
        click.echo(f"  demo took {time.monotonic() - started:.0f}s")
    if left:
        raise LabError(f"teardown left things behind: {left}")
