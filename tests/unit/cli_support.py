"""Run `anycast-ctl` in-process exactly as the console script does (real exit codes)."""

from __future__ import annotations

from click.testing import CliRunner

from anycast_ctl.cli import main


def run_cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `anycast-ctl ARGS...`."""
    with CliRunner().isolation(input=stdin) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, out.getvalue().decode(), err.getvalue().decode()
