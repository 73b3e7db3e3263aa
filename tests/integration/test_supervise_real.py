"""anycast-ctl-supervise with real processes: waits for `start`, restarts a killed program,
takes what it forked along, stops everything on SIGTERM, fails visibly when a program keeps
dying. No root and no container needed: PID 1's only extra duty (reaping orphans) is the
same loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# Shorter backoff than in a container, so a test does not wait out 1+2+4+8+8 s.
RUNNER = (
    "import sys, anycast_ctl.supervise as s; s.FIRST_DELAY = s.MAX_DELAY = float(sys.argv[2]); "
    "sys.exit(s.main([sys.argv[1]]))"
)


def _status(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.fixture
def supervisor(tmp_path: Path):
    started: list[subprocess.Popen[bytes]] = []

    def run(programs: list[dict[str, Any]], delay: float = 0.3) -> tuple[Any, Path]:
        spec = tmp_path / "programs.json"
        spec.write_text(json.dumps({"programs": programs}))
        status = tmp_path / "status.json"
        env = dict(os.environ, ANYCAST_SUPERVISE_STATUS=str(status))
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(spec), str(delay)],
            env=env,
            stderr=subprocess.PIPE,
        )
        started.append(proc)
        _until(lambda: _status(status).get("state") == "waiting", 10, "supervisor waiting")
        return proc, status

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_programs_start_on_start_and_a_killed_one_comes_back(supervisor) -> None:
    # The shell forks a sleep: killing the shell must take the sleep with it.
    proc, status = supervisor(
        [
            {"name": "a", "argv": ["sh", "-c", "sleep 300 & wait"]},
            {"name": "b", "argv": ["sleep", "300"]},
        ]
    )
    assert all(p["pid"] is None for p in _status(status)["programs"])  # nothing before start
    proc.send_signal(signal.SIGUSR1)
    rows = _until(
        lambda: all(p["pid"] for p in _status(status)["programs"]) and _status(status)["programs"],
        10,
        "both started",
    )
    a = next(p for p in rows if p["name"] == "a")
    b = next(p for p in rows if p["name"] == "b")
    child = _until(
        lambda: Path(f"/proc/{a['pid']}/task/{a['pid']}/children").read_text().split(),
        10,
        "a forked its sleep",
    )
    os.kill(a["pid"], signal.SIGKILL)
    again = _until(
        lambda: next(
            (p for p in _status(status)["programs"] if p["name"] == "a" and p["restarts"] == 1),
            None,
        ),
        10,
        "a restarted",
    )
    assert again["pid"] not in (None, a["pid"])
    assert not _alive(int(child[0])), "what the killed program forked outlived it"
    assert _alive(b["pid"]), "another program's death touched b"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert _status(status)["state"] == "stopped"
    assert not _alive(again["pid"]) and not _alive(b["pid"])


def test_a_program_that_keeps_dying_fails_the_supervisor(supervisor) -> None:
    from anycast_ctl.supervise import MAX_DEATHS

    proc, status = supervisor([{"name": "bad", "argv": ["false"]}], delay=0.05)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=20) == 1
    assert _status(status)["state"] == "failed"
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert f"bad: died {MAX_DEATHS + 1} times" in stderr
