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
            # As the interpreter maps it: None is 0, a message is 1.
            code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        return code, out.getvalue().decode(), err.getvalue().decode()
