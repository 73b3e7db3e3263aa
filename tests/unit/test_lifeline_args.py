"""The lifeline guardian reads its own options (Lifeline.start writes them) and imports
only the few standard modules it needs: it runs for as long as the agent does."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from anycast_ctl.agent import lifeline
from anycast_ctl.agent.lifeline import UsageError, parse_args

START = ["--fd", "5", "--beat-fd", "7", "--agent", "10", "--target", "11",
         "--target-start", "123"]  # fmt: skip


def test_what_lifeline_start_writes_is_read_back() -> None:
    args = parse_args([*START, "--stall-after", "0.6", "--startup-stall-after", "10.0",
                       "--grace", "1.0", "--remove-chance"])  # fmt: skip
    assert args == {
        "fd": 5, "beat-fd": 7, "agent": 10, "target": 11, "target-start": 123, "stall-after": 0.6,
        "startup-stall-after": 10.0, "grace": 1.0, "remove-chance": True,
    }  # fmt: skip


def test_defaults_apply_to_what_may_be_left_out() -> None:
    args = parse_args([*START, "--stall-after", "0.6"])
    assert args["grace"] == 1.0 and args["remove-chance"] is False
    assert args["startup-stall-after"] == 0.0  # guard() then uses stall-after


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (START, "--stall-after is required"),
        ([*START, "--stall-after"], "needs a float"),
        ([*START, "--stall-after", "soon"], "needs a float"),
        ([*START, "--stall-after", "1", "--fd", "6"], "repeated"),
        ([*START, "--stall-after", "1", "--verbose"], "unknown"),
    ],
)
def test_bad_options_are_refused_by_name(argv, said) -> None:
    with pytest.raises(UsageError, match=said):
        parse_args(argv)


def test_the_guardian_imports_only_small_standard_modules() -> None:
    # As the guardian runs it (-I -S, the file as a script), then the modules loaded.
    probe = (
        "import sys; before = set(sys.modules); "
        f"exec(compile(open({lifeline.__file__!r}).read(), 'lifeline', 'exec'), "
        "{'__name__': 'lifeline'}); print(sorted(set(sys.modules) - before))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = set(ast.literal_eval(done.stdout))
    assert {"os", "select", "signal", "mmap"} <= loaded  # what it needs (and what they import)
    heavy = {"argparse", "re", "gettext", "typing", "logging", "subprocess", "contextlib"}
    assert not loaded & heavy, loaded & heavy


def test_the_last_beat_is_read_whole_and_a_torn_pair_counts_as_the_older():
    page = bytearray(lifeline.BEAT.size)
    lifeline.BEAT.pack_into(page, 0, 12.5, 12.5)
    assert lifeline.last_beat(page) == 12.5
    lifeline.BEAT.pack_into(page, 0, 20.0, 12.5)  # the agent died between its two stores
    assert lifeline.last_beat(page) == 12.5  # toward a stall, never away from one
