"""`anycast-ctl lab containers ...`: a rendered containerlab topology deployed with podman the
way containerlab does it, and traffic against any container deployment of it (ours, or
containerlab's own with podman or docker), checked flow by flow against the simulator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from anycast_ctl.cli import lab_format
from anycast_ctl.cli.lab_support import EXIT_FAILED, need_root

CLAB_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group("containers")
def containers() -> None:
    """Container labs from `lab render --format containerlab` (needs `make images`)."""


@containers.command("up")
@click.argument("clab_file", type=CLAB_FILE)
@click.option(
    "--name", default="acx-clab", show_default=True, help="Container name prefix and tag."
)
def up(clab_file: Path, name: str) -> None:
    """Deploy CLAB_FILE with podman: containers, a veth pair per link, every exec line."""
    from anycast_ctl.lab.containers import podman

    need_root()
    reason = podman.unavailable()
    if reason:
        raise click.ClickException(f"podman cannot deploy here: {reason}")
    dep = podman.deploy(clab_file, name)
    click.echo(f"deployed {len(dep.pids)} containers: {', '.join(dep.name(n) for n in dep.pids)}")


@containers.command("down")
@click.option("--name", default="acx-clab", show_default=True)
def down(name: str) -> None:
    """Remove every container deployed under NAME (their links go with them)."""
    from anycast_ctl.lab.containers import podman

    need_root()
    removed = podman.destroy(name)
    click.echo(f"removed {len(removed)} containers")


@containers.command("traffic")
@click.argument("topology", type=click.Path(exists=True, dir_okay=False))
@click.argument("clab_file", type=CLAB_FILE)
@click.option(
    "--prefix",
    help="Containers are PREFIX-<node> (default: containerlab's clab-<lab name>; "
    "`lab containers up` uses its --name).",
)
@click.option(
    "--runtime", type=click.Choice(["podman", "docker"]), default="podman", show_default=True
)
@click.option(
    "--connections", "-n", type=click.IntRange(min=1, max=40000), default=300, show_default=True
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0, max=600),
    default=120,
    show_default=True,
    help="Seconds to wait for every router to forward every VIP to all its LBs first.",
)
@click.option("--json", "as_json", is_flag=True, help="Every flow, the shares and the agreement.")
def traffic(
    topology: str,
    clab_file: Path,
    prefix: str | None,
    runtime: str,
    connections: int,
    wait: float,
    as_json: bool,
) -> None:
    """TLS connections from TOPOLOGY's clients in their containers; the LB that carried each
    vs the simulator's prediction from the routers' kernel next hops. Exit 1 on a mismatch."""
    import os

    from anycast_ctl.config.topology import load_topology
    from anycast_ctl.lab.containers import podman
    from anycast_ctl.lab.experiments.container_traffic import run_traffic, wait_converged

    need_root()
    topo = load_topology(topology)
    spec = podman.load_spec(clab_file)
    dep = podman.attach(
        clab_file, prefix or f"clab-{spec.lab}", f"acx-traffic-{os.getpid()}", runtime
    )
    wait_converged(dep, topo, wait)
    result = run_traffic(dep, topo, connections)
    click.echo(
        json.dumps(result.to_json(), indent=2) if as_json else lab_format.traffic_text(result)
    )
    agree, total = result.agreement()
    if agree != total:
        sys.exit(EXIT_FAILED)
