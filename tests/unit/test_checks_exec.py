"""Exec check: exit codes, missing programs, and no process left behind after a timeout."""

import asyncio
import os
import time

import pytest

from anycast_ctl.agent.checks import build_check, run_check
from anycast_ctl.agent.checks.exec_ import OUTPUT_CAP, describe_exit
from anycast_ctl.agent.health import Health
from anycast_ctl.config.node import ExecCheck


def run_exec(command, timeout=2.0):
    check = build_check("cmd", ExecCheck(type="exec", command=command))
    return asyncio.run(run_check(check, timeout))


def process_gone(pid: int) -> bool:
    """Gone, or a zombie that is no longer ours to reap (reparented to init)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    state, parent = fields[0], int(fields[1])
    return state in ("Z", "X") and parent != os.getpid()


def wait_until_gone(pid: int, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.01)  # bounded poll: init reaps an orphan on its own schedule
    return process_gone(pid)


def test_exit_zero_is_ok():
    result = run_exec(["true"])
    assert (result.health, result.detail, result.extra) == (
        Health.OK,
        "exit status 0",
        {"returncode": 0},
    )


def test_non_zero_exit_is_soft_with_the_last_output_line():
    result = run_exec(["sh", "-c", "echo checking; echo 'db: connection refused' >&2; exit 3"])
    assert (result.health, result.detail) == (
        Health.SOFT_FAIL,
        "exit status 3: db: connection refused",
    )


def test_false_is_soft():
    assert run_exec(["false"]).health is Health.SOFT_FAIL


def test_death_by_signal_is_soft():
    result = run_exec(["sh", "-c", "kill -TERM $$"])
    assert (result.health, result.detail) == (Health.SOFT_FAIL, "killed by SIGTERM")


def test_missing_program_is_hard():
    result = run_exec(["/nonexistent/health-probe"])
    assert (result.health, result.detail) == (
        Health.HARD_FAIL,
        "no such file: /nonexistent/health-probe",
    )


def test_program_not_in_path_is_hard():
    assert run_exec(["no-such-program-anycast-ctl"]).health is Health.HARD_FAIL


def test_non_executable_file_is_hard(tmp_path):
    script = tmp_path / "probe.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    result = run_exec([str(script)])
    assert (result.health, result.detail) == (Health.HARD_FAIL, f"permission denied: {script}")


def test_timeout_kills_and_reaps_the_command_and_its_children(tmp_path):
    pids = tmp_path / "pids"
    # The shell forks a grandchild, records both pids, then waits on it.
    command = ["sh", "-c", f'sleep 30 & echo "$$ $!" > {pids}; wait']
    started = time.monotonic()
    result = run_exec(command, timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.health is Health.SOFT_FAIL
    assert result.detail == "timed out after 0.5s: sh"
    assert elapsed < 0.5 + 0.3
    shell, grandchild = (int(p) for p in pids.read_text().split())
    with pytest.raises(ProcessLookupError):  # our direct child: reaped, not even a zombie
        os.kill(shell, 0)
    assert wait_until_gone(grandchild)


def test_background_children_left_behind_are_killed(tmp_path):
    pidfile = tmp_path / "pid"
    result = run_exec(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; exit 0"])
    assert result.health is Health.OK
    assert wait_until_gone(int(pidfile.read_text()))


def test_large_output_does_not_block_the_command():
    # Much more than a pipe buffer (64 KiB): the command must still finish and exit 0.
    result = run_exec(["sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo done"])
    assert (result.health, result.detail) == (Health.OK, "exit status 0: done")
    assert OUTPUT_CAP < 1_000_000


def test_no_shell_interpretation_of_arguments(tmp_path):
    marker = tmp_path / "marker"
    result = run_exec(["echo", f"; touch {marker}"])
    assert result.health is Health.OK
    assert not marker.exists()


@pytest.mark.parametrize(
    "code, text", [(0, "exit status 0"), (2, "exit status 2"), (-9, "killed by SIGKILL")]
)
def test_describe_exit(code, text):
    assert describe_exit(code) == text
