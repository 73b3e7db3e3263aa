"""`anycast-ctl render haproxy|node|frr TOPOLOGY ...`: one node's config from a topology file.

These commands join the `render` group (cli/render_cmd.py). Each writes one file into --out
(a directory, created if missing) and prints its path; `--out -` prints the text instead.
"""

from __future__ import annotations

from pathlib import Path

import click

from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.render import lb_layout
from anycast_ctl.render.lb_layout import PROFILES

DEFAULT_RUN_DIR = str(lb_layout.DEFAULT_RUN_DIR)
DEFAULT_STATE_DIR = str(lb_layout.DEFAULT_STATE_DIR)

_topology_arg = click.argument("topology_path", metavar="TOPOLOGY", type=click.Path(dir_okay=False))
_out_opt = click.option(
    "--out",
    "out_dir",
    required=True,
    metavar="DIR",
    help="Directory to write into (created if missing); '-' prints to stdout.",
)
_run_dir_opt = click.option(
    "--run-dir",
    default=DEFAULT_RUN_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Runtime directory on the LB node; sockets go under RUN_DIR/<node>/.",
)
_state_dir_opt = click.option(
    "--state-dir",
    default=DEFAULT_STATE_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="State directory on the LB node (the unit's StateDirectory=); the drain state goes "
    "under STATE_DIR/<node>/, where restarts and reboots keep it.",
)
_profile_opt = click.option(
    "--profile",
    type=click.Choice(PROFILES),
    default="recommended",
    show_default=True,
    help="Check pace: 'recommended' is fast failover (0.1 s checks), 'conservative' the defaults.",
)


def _lb(topology: Topology, name: str) -> str:
    names = [lb.name for lb in topology.lbs if lb.vips]
    if name not in names:
        raise UserError.single(
            "<argument>",
            "--node",
            f"no LB node announcing a VIP is named {name!r} (known: {', '.join(names)})",
        )
    return name


def _emit(text: str, out_dir: str, file_name: str) -> None:
    if out_dir == "-":
        click.echo(text, nl=False)
        return
    path = Path(out_dir) / file_name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise UserError.single(str(path), "", f"cannot write: {exc.strerror or exc}") from None
    click.echo(str(path))


@click.command("haproxy")
@_topology_arg
@click.option("--node", required=True, help="The LB node.")
@_out_opt
@_run_dir_opt
@_profile_opt
def haproxy_cmd(topology_path: str, node: str, out_dir: str, run_dir: str, profile: str) -> None:
    """Write the LB node's haproxy.cfg (TCP mode, TLS passthrough)."""
    from anycast_ctl.render.haproxy import render_haproxy

    topology = load_topology(topology_path)
    text = render_haproxy(topology, _lb(topology, node), run_dir=Path(run_dir), profile=profile)
    _emit(text, out_dir, "haproxy.cfg")


@click.command("node")
@_topology_arg
@click.option("--node", required=True, help="The LB node.")
@_out_opt
@_run_dir_opt
@_state_dir_opt
@_profile_opt
@click.option(
    "--topology-file",
    default="/etc/anycast-ctl/topology.yaml",
    show_default=True,
    help="Where the LB node finds this topology (second chance predicts the routers' "
    "hashing with it); install the same file there. 'none': forward along the ring only.",
)
def node_cmd(
    topology_path: str,
    node: str,
    out_dir: str,
    run_dir: str,
    state_dir: str,
    profile: str,
    topology_file: str,
) -> None:
    """Write the LB node's agent config (node.yaml), second chance on unless the topology
    turns it off."""
    from anycast_ctl.render.node_chance import chance_notice
    from anycast_ctl.render.node_config import node_config, node_config_yaml

    if topology_file != "none" and not Path(topology_file).is_absolute():
        raise UserError.single(
            "<argument>", "--topology-file", f"{topology_file!r} must be an absolute path"
        )
    topology = load_topology(topology_path)
    config = node_config(
        topology,
        _lb(topology, node),
        run_dir=Path(run_dir),
        profile=profile,
        state_dir=Path(state_dir),
        topology_file=None if topology_file == "none" else Path(topology_file),
    )
    notice = chance_notice(topology)
    if notice is not None:
        click.echo(f"note: {notice}", err=True)
    _emit(node_config_yaml(config, topology_name=topology.name), out_dir, "node.yaml")


@click.command("frr")
@_topology_arg
@click.option("--router", required=True, help="The router.")
@_out_opt
def frr_cmd(topology_path: str, router: str, out_dir: str) -> None:
    """Write the router's integrated frr.conf (zebra + bgpd)."""
    from anycast_ctl.render.frr import render_frr
    from anycast_ctl.render.plan import router_plans

    topology = load_topology(topology_path)
    plans = router_plans(topology)
    if router not in plans:
        raise UserError.single(
            "<argument>", "--router", f"no router named {router!r} (known: {', '.join(plans)})"
        )
    _emit(render_frr(plans[router]), out_dir, "frr.conf")


COMMANDS = (haproxy_cmd, node_cmd, frr_cmd)


def add_to(group: click.Group) -> None:
    """Register these commands in the `render` group."""
    for command in COMMANDS:
        group.add_command(command)
