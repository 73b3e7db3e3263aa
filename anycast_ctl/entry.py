"""The `anycast-ctl` console script. `agent run` (ExaBGP starts it at every restart, and the
node is out of every FIB until its first announce) goes straight to the agent, without click
and the CLI's modules; every other command, and an `agent run` line the agent cannot read
by itself, goes to the CLI (anycast_ctl.cli)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:2] == ["agent", "run"]:
        from anycast_ctl.agent.main import run, run_args

        parsed = run_args(args[2:])
        if parsed is not None:
            sys.exit(run(*parsed))
    from anycast_ctl.cli import main as cli_main

    cli_main(argv)
