"""`anycast-ctl agent run CONFIG`: what ExaBGP starts, at every one of its restarts.

The node is out of every FIB until the agent's first announce, so this path imports only what
the agent needs: `anycast_ctl.entry` hands it a command line it can read itself
(`run_args`) without click or the rest of the CLI; anything else (--help, a value out of
range, an unknown option) goes to the click command, which says what is wrong.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anycast_ctl.config.node import NodeConfig

LOG_LEVELS = ("debug", "info", "warning", "error")
# The same floor as the node config's lifeline.stall_after.
MIN_STALL_AFTER = 0.3
MAX_STALL_AFTER = 3600.0


def run_args(args: list[str]) -> tuple[str, str, float | None] | None:
    """Pure: the words after `agent run` -> (config, log level, stall-after), or None when
    they are not a plain valid command line (the CLI then parses them and reports)."""
    config: str | None = None
    options: dict[str, str] = {}
    words = iter(args)
    for word in words:
        if word.startswith("-"):
            name, eq, value = word.partition("=")
            if name not in ("--log-level", "--stall-after") or name in options:
                return None
            if not eq:
                value = next(words, "")
            if not value or value.startswith("-"):
                return None
            options[name] = value
        elif config is None:
            config = word
        else:
            return None
    level = options.get("--log-level", "info")
    if config is None or level not in LOG_LEVELS:
        return None
    stall_after: float | None = None
    if "--stall-after" in options:
        try:
            stall_after = float(options["--stall-after"])
        except ValueError:
            return None
        if not (math.isfinite(stall_after) and 0 <= stall_after <= MAX_STALL_AFTER):
            return None
        if 0 < stall_after < MIN_STALL_AFTER:
            return None
    return config, level, stall_after


def run(config_path: str, log_level: str, stall_after: float | None) -> int:
    """Validate the config (exit 2 with one line per problem), then run the agent until it
    stops; returns its exit code."""
    import gc

    # Start-up allocates hundreds of thousands of objects that live for good (the config's
    # models, every module): collecting them while importing only delays the first announce.
    # Collection resumes, with those objects frozen out of it, once every VIP has a decision
    # (Failsafe.first_decisions_made).
    gc.disable()
    from anycast_ctl.agent.preflight import check_node_config
    from anycast_ctl.errors import EXIT_USAGE, UserError

    # The same validation as `config check`: a bad config exits 2 before anything is announced.
    try:
        config = check_node_config(config_path)
    except UserError as exc:
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    import asyncio
    import logging

    logging.basicConfig(
        stream=sys.stderr,
        level=log_level.upper(),
        format=f"%(asctime)s anycast-ctl[{config.node}] %(name)s %(levelname)s: %(message)s",
    )
    if stall_after is None:
        stall_after = config.lifeline.stall_after
    return asyncio.run(_agent(config, config_path, stall_after))


async def _agent(config: NodeConfig, config_path: str, stall_after: float) -> int:
    import logging
    from pathlib import Path

    from anycast_ctl.agent.lifeline import Lifeline, exabgp_parent
    from anycast_ctl.agent.runtime import AgentRuntime
    from anycast_ctl.agent.sdnotify import Notifier
    from anycast_ctl.agent.speaker import stdio_speaker

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
            "not started by ExaBGP: no lifeline; if this agent dies its routes are not withdrawn"
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
