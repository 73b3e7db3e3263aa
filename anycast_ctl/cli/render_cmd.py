"""`anycast-ctl render ...`: configs for the daemons around the agent, written to files.

`render exabgp CONFIG --out DIR` turns one node config into the exabgp.conf and exabgp.env
that run the agent inside ExaBGP, and the bfdd.conf of FRR's bfdd beside it (unless the
config's `bfd.enabled` is false). The topology-based commands (haproxy, node, frr) join this
group from cli/render_topology_cmd.py.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from anycast_ctl.cli import render_topology_cmd
from anycast_ctl.errors import UserError


@click.group()
def render() -> None:
    """Render daemon configs (ExaBGP, FRR, HAProxy, node configs)."""


@render.command("exabgp")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Directory to write exabgp.conf, exabgp.env and bfdd.conf into (created if missing).",
)
@click.option(
    "--agent-command",
    default="anycast-ctl",
    show_default=True,
    metavar="COMMAND",
    help="How ExaBGP starts anycast-ctl; 'agent run CONFIG' is appended. "
    "ExaBGP looks a relative program up in its PATH.",
)
def exabgp_cmd(config_path: str, out_dir: str, agent_command: str) -> None:
    """Write exabgp.conf, exabgp.env and bfdd.conf for the node config CONFIG into DIR."""
    from anycast_ctl.config.node import load_node_config
    from anycast_ctl.render.bfdd import BFDD_CONF, render_bfdd
    from anycast_ctl.render.exabgp import agent_argv, render_exabgp

    config = load_node_config(config_path)
    try:
        command = shlex.split(agent_command)
    except ValueError as exc:
        raise UserError.single("<argument>", "--agent-command", f"cannot split: {exc}") from None
    # ExaBGP may run from any directory: give it the config's absolute path.
    config_file = Path(config_path).resolve()
    files = render_exabgp(config, config_file, agent_argv(command, config_file))
    bfdd = render_bfdd(config)
    if bfdd is not None:
        files[BFDD_CONF] = bfdd
    out = Path(out_dir)
    for name, text in files.items():
        path = out / name
        try:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            raise UserError.single(str(path), "", f"cannot write: {exc.strerror or exc}") from None
        click.echo(f"wrote {path}")


render_topology_cmd.add_to(render)
