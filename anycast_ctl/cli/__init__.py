"""The `anycast-ctl` command. Each command group lives in its own module and is added here."""

from __future__ import annotations

import importlib
import sys

import click

from anycast_ctl import __version__
from anycast_ctl.cli.lab_support import EXIT_FAILED
from anycast_ctl.errors import EXIT_USAGE, UserError
from anycast_ctl.lab.errors import LabError

# name -> (module, attribute) of every top-level command or group, in help order. Modules are
# imported only when their command runs: `anycast-ctl drain` must not pay for numpy, pyroute2
# and the lab (an operator's drain is timed from the moment they press enter).
COMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("anycast_ctl.cli.agent_cmd", "agent"),
    "config": ("anycast_ctl.cli.config_cmd", "config"),
    "demo": ("anycast_ctl.cli.demo_cmd", "demo"),
    "drain": ("anycast_ctl.cli.control_cmd", "drain"),
    "undrain": ("anycast_ctl.cli.control_cmd", "undrain"),
    "status": ("anycast_ctl.cli.control_cmd", "status"),
    "sim": ("anycast_ctl.cli.sim_cmd", "sim"),
    "lab": ("anycast_ctl.cli.lab_cmd", "lab"),
    "render": ("anycast_ctl.cli.render_cmd", "render"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="anycast-ctl")
def cli() -> None:
    """BGP/ECMP anycast load balancing: agent, simulator, lab and config rendering."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input of any kind ends with its problems on stderr and exit 2; a lab
    that could not do what it must (LabError) with its reason and exit 1."""
    try:
        # standalone_mode=False returns ctx.exit()'s code instead of exiting; keep it.
        code = cli.main(args=argv, prog_name="anycast-ctl", standalone_mode=False)
    except UserError as exc:
        for line in exc.lines():
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USAGE)
    except LabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        # One line, like every other bad input: what is wrong with which argument, and where
        # the help is (click's own format adds a usage block around it).
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())
        click.echo(f"error: {message}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
