"""`anycast-ctl agent run CONFIG`: the per-node agent, started by ExaBGP as an API process."""

from __future__ import annotations

import sys

import click

from anycast_ctl.agent.main import LOG_LEVELS, MAX_STALL_AFTER, MIN_STALL_AFTER, run as run_agent
from anycast_ctl.cli.params import Finite


@click.group()
def agent() -> None:
    """The per-node agent (ExaBGP runs it; see `anycast-ctl render exabgp`)."""


@agent.command("run")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default="info",
    show_default=True,
)
@click.option(
    "--stall-after",
    type=Finite(0, MAX_STALL_AFTER),
    default=None,
    help="Stop ExaBGP if the agent sends no heartbeat this long (s, 0.3 to 3600) once "
    "every VIP has had its first decision; 0 disables the lifeline. Default: "
    "lifeline.stall_after in the node config (0.6 s); until the first decisions "
    "lifeline.startup_stall_after applies, so a CPU-starved start is not taken for a hang.",
)
def run(config_path: str, log_level: str, stall_after: float | None) -> None:
    """Health-check the local LB and announce/withdraw this node's VIPs through ExaBGP.

    stdin/stdout are ExaBGP's pipe; logs go to stderr (ExaBGP forwards them to its log).
    """
    if stall_after is not None and 0 < stall_after < MIN_STALL_AFTER:
        # Below the config's own minimum the guardian would take ordinary scheduling jitter
        # for a hang and stop a healthy ExaBGP.
        raise click.BadParameter(
            f"{stall_after:g} s is below {MIN_STALL_AFTER:g} s (0 disables the lifeline)",
            param_hint="'--stall-after'",
        )
    sys.exit(run_agent(config_path, log_level, stall_after))
