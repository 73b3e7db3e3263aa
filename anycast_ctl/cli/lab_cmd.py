"""`anycast-ctl lab ...`: run a topology as a real network in Linux namespaces (root).

Exit codes: 0 done; 2 bad input (topology, arguments, no such lab); 1 the lab failed
(did not come up, left something behind, traffic failed or disagreed with the simulator).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from anycast_ctl.cli import lab_format
from anycast_ctl.cli.lab_containers_cmd import containers
from anycast_ctl.cli.lab_failover_cmd import failover
from anycast_ctl.cli.lab_support import EXIT_FAILED, need_root
from anycast_ctl.lab.errors import LabError


def _say(msg: str) -> None:
    click.echo(f"  {msg}", err=True)


@click.group()
def lab() -> None:
    """Run a topology as a real network in namespaces: FRR routers, LB nodes (HAProxy + ExaBGP +
    agent), TLS backends and clients."""


@lab.command("up")
@click.argument("topology", type=click.Path(dir_okay=False))
@click.option("--name", help="Lab name (default: the topology's name); its tag is acx-NAME.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for BGP and the FIBs to converge.",
)
@click.option(
    "--profile",
    type=click.Choice(["recommended", "conservative"]),
    default="recommended",
    show_default=True,
    help="Health-check speeds of the agents and HAProxy.",
)
@click.option(
    "--cert-days",
    type=float,
    default=None,
    help="Validity of the lab's certificates in days (default 2; at least 10 minutes), to "
    "cross the topology's certificates.warn_days / withdraw_days on purpose.",
)
@click.option(
    "--vip-copies",
    type=click.IntRange(min=1, max=10_000),
    default=1,
    show_default=True,
    help="Make every VIP N VIPs on consecutive addresses (198.19.0.0/16, 2001:db8:5ca1::/64), "
    "announced by the same nodes: default.yaml with 1000 runs 1,000 VIPs on each LB node.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON when up.")
def up(
    topology: str,
    name: str | None,
    timeout: float,
    profile: str,
    cert_days: float | None,
    vip_copies: int,
    as_json: bool,
) -> None:
    """Build TOPOLOGY and start every daemon; wait until every router has converged."""
    from anycast_ctl.config.topology import Topology, load_topology
    from anycast_ctl.lab.scale import with_vip_copies
    from anycast_ctl.lab.topology_up import Lab

    need_root()
    source: str | Topology = topology
    if vip_copies > 1:
        source = with_vip_copies(load_topology(topology), vip_copies)
    started = Lab.up(source, name, timeout=timeout, profile=profile, log=_say, cert_days=cert_days)
    status = started.status()
    if as_json:
        click.echo(
            json.dumps({**status, "up_seconds": round(started.bringup_seconds or 0, 3)}, indent=2)
        )
        return
    click.echo(lab_format.routers_table(status))
    click.echo(
        f"\nlab {started.name} up in {started.bringup_seconds:.1f}s "
        f"({len(started.namespaces)} namespaces); `anycast-ctl lab down {started.name}` removes it"
    )


@lab.command("down")
@click.argument("name", required=False)
def down(name: str | None) -> None:
    """Stop and remove everything lab NAME created (the only running lab when NAME is omitted)."""
    from anycast_ctl.lab import state
    from anycast_ctl.lab.bringup import TAG_PREFIX, tag_named
    from anycast_ctl.lab.net.cleanup import cleanup, leftovers
    from anycast_ctl.lab.topology_up import Lab

    need_root()
    if not name:
        name = Lab.attach().name
    known = state.all_tags()
    tag = tag_named(name, known)
    report = cleanup(tag)
    click.echo(lab_format.cleanup_text(name, report))
    others = [t.removeprefix(TAG_PREFIX) for t in known if t != tag]
    if not (report.namespaces or report.terminated or report.killed or report.files) and others:
        click.echo(f"nothing of lab {name!r} was found; labs here: {', '.join(others)}", err=True)
    left = leftovers(tag)
    if left:
        raise LabError(str(left))


@lab.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(name: str | None, as_json: bool) -> None:
    """Namespaces, daemons, BGP sessions and FIB next hops per router, agent state per LB node."""
    from anycast_ctl.lab.topology_up import Lab

    need_root()
    info = Lab.attach(name).status()
    click.echo(json.dumps(info, indent=2) if as_json else lab_format.status_text(info))
    if not info["converged"]:
        sys.exit(EXIT_FAILED)


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--name", help="The lab (default: the only running one).")
def exec_(node: str, command: tuple[str, ...], name: str | None) -> None:
    """Run COMMAND inside NODE's namespace.

    Example: anycast-ctl lab exec r1 -- vtysh -c 'show bgp summary'
    """
    from anycast_ctl.errors import UserError
    from anycast_ctl.lab.topology_up import Lab

    need_root()
    running = Lab.attach(name)
    if node not in running.topology.kinds:
        raise UserError.single(
            "<argument>",
            "NODE",
            f"{node!r} is not a node of lab {running.name} ({', '.join(running.topology.kinds)})",
        )
    argv = list(command[1:] if command[:1] == ("--",) else command)
    if not argv:
        raise UserError.single("<argument>", "COMMAND", "give the command to run after --")
    if argv and argv[0] == "vtysh" and running.topology.kind(node) == "router":
        argv = [
            "vtysh",
            "-N",
            running.namespace(node),
            *argv[1:],
        ]  # FRR's vty sockets are per namespace
    result = running.exec(node, argv, timeout=None, capture=False)
    sys.exit(result.returncode)


@lab.command("traffic")
@click.argument("name", required=False)
@click.option(
    "--connections", "-n", type=click.IntRange(min=1, max=40000), default=300, show_default=True
)
@click.option(
    "--first-port",
    type=click.IntRange(1024, 65535),
    default=20000,
    show_default=True,
    help="Source port of the first flow; flow i uses FIRST_PORT + i.",
)
@click.option(
    "--sources",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Source addresses per client prefix.",
)
@click.option("--concurrency", type=click.IntRange(min=1, max=1024), default=64, show_default=True)
@click.option(
    "--no-client-cert",
    is_flag=True,
    help="Send the same flows without the clients' certificates (to see mTLS refuse them).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Every flow, the shares and the agreement as JSON."
)
def traffic(
    name: str | None,
    connections: int,
    first_port: int,
    sources: int,
    concurrency: int,
    no_client_cert: bool,
    as_json: bool,
) -> None:
    """TLS connections from the clients; which LB carried each, vs the simulator's prediction."""
    from anycast_ctl.lab.topology_up import Lab

    need_root()
    result = Lab.attach(name).traffic(
        connections,
        first_port=first_port,
        sources=sources,
        concurrency=concurrency,
        client_cert=not no_client_cert,
    )
    click.echo(
        json.dumps(result.to_json(), indent=2) if as_json else lab_format.traffic_text(result)
    )
    agree, total = result.agreement()
    if agree != total:
        sys.exit(EXIT_FAILED)


@lab.command("render")
@click.argument("topology", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["containerlab"]),
    default="containerlab",
    show_default=True,
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Directory; the lab goes to OUT/<topology name>/.",
)
@click.option(
    "--profile",
    type=click.Choice(["recommended", "conservative"]),
    default="recommended",
    show_default=True,
)
def render(topology: str, fmt: str, out_dir: str, profile: str) -> None:
    """Write TOPOLOGY as a containerlab lab (same rendered configs as the namespace lab)."""
    from anycast_ctl.config.topology import load_topology
    from anycast_ctl.render.containerlab import render_containerlab
    from anycast_ctl.render.containerlab_nodes import warnings

    started = time.monotonic()
    topo = load_topology(topology)
    written = render_containerlab(topo, Path(out_dir), profile=profile)
    for warning in warnings(topo):
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"wrote {len(written)} files under {Path(out_dir)} in {time.monotonic() - started:.2f}s"
    )


lab.add_command(failover)
lab.add_command(containers)
