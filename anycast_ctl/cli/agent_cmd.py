"""`anycast-ctl agent run CONFIG`: the per-node agent, started by ExaBGP as an API process."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from anycast_ctl.cli.params import Finite

# The same floor as the node config's lifeline.stall_after.
MIN_STALL_AFTER = 0.3


@click.group()
def agent() -> None:
    """The per-node agent (ExaBGP runs it; see `anycast-ctl render exabgp`)."""


@agent.command("run")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--stall-after",
    type=Finite(0, 3600),
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
    import gc
    from pathlib import Path

    # Start-up allocates hundreds of thousands of objects that live for good (the config's
    # models, every module): collecting them while importing only delays the first announce.
    # Collection resumes, with those objects frozen out of it, once every VIP has a decision
    # (Failsafe.first_decisions_made).
    gc.disable()
    if stall_after is not None and 0 < stall_after < MIN_STALL_AFTER:
        # Below the config's own minimum the guardian would take ordinary scheduling jitter
        # for a hang and stop a healthy ExaBGP.
        raise click.BadParameter(
            f"{stall_after:g} s is below {MIN_STALL_AFTER:g} s (0 disables the lifeline)",
            param_hint="'--stall-after'",
        )

    from anycast_ctl.agent.lifeline import Lifeline, exabgp_parent
    from anycast_ctl.agent.preflight import check_node_config
    from anycast_ctl.agent.runtime import AgentRuntime
    from anycast_ctl.agent.sdnotify import Notifier
    from anycast_ctl.agent.speaker import stdio_speaker

    # The same validation as `config check`: a bad config exits 2 before anything is announced.
    config = check_node_config(config_path)
    logging.basicConfig(
        stream=sys.stderr,
        level=log_level.upper(),
        format=f"%(asctime)s anycast-ctl[{config.node}] %(name)s %(levelname)s: %(message)s",
    )
    if stall_after is None:
        stall_after = config.lifeline.stall_after

    async def main() -> int:
        speaker = await stdio_speaker()
        lifeline = None
        parent = exabgp_parent()
        if stall_after and parent is not None:
            lifeline = Lifeline.start(
                parent,
                stall_after=stall_after,
                startup_stall_after=max(stall_after, config.lifeline.startup_stall_after),
                remove_chance=config.second_chance.enabled,
            )
        elif stall_after:
            logging.getLogger("anycast_ctl.agent").warning(
                "not started by ExaBGP: no lifeline; if this agent dies its routes are not"
                " withdrawn"
            )
        # Imported only when used: the netlink client and prometheus_client cost RSS.
        loopback = metrics = None
        if config.loopback.manage:
            from anycast_ctl.agent.netlink import LoopbackAddresses

            loopback = LoopbackAddresses(config.loopback.interface)
        if config.metrics.enabled:
            from anycast_ctl.agent.metrics import AgentMetrics

            metrics = AgentMetrics(config.node)
        runtime = AgentRuntime(
            config,
            Path(config_path),
            speaker,
            loopback=loopback,
            metrics=metrics,
            lifeline=lifeline,
            notifier=Notifier(),
        )
        return await runtime.run()

    sys.exit(asyncio.run(main()))
