"""The lifeline guardian with real processes (no root needed): a `sleep` stands in for ExaBGP and
a small Python process for the agent. Bounded polls, no bare sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from anycast_ctl.agent.lifeline import _stop, process_start_time

AGENT = """
import asyncio, sys
from anycast_ctl.agent.lifeline import Lifeline
lifeline = Lifeline.start(int(sys.argv[1]), stall_after=0.5, grace=0.5)
print(lifeline.guardian.pid, flush=True)
async def main():
    beats = asyncio.create_task(lifeline.heartbeat(0.05))
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() == "stand-down":
        lifeline.stand_down()
        print("stood down", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    beats.cancel()
asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def poll(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout}s"
        time.sleep(0.005)


@pytest.fixture
def pair():
    """(target, agent, guardian pid): a stand-in ExaBGP and an agent guarding it."""
    target = subprocess.Popen(["sleep", "60"])
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(target.pid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    guardian = int(agent.stdout.readline())
    try:
        yield target, agent, guardian
    finally:
        for proc in (agent, target):
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
        if alive(guardian):
            os.kill(guardian, signal.SIGKILL)


def test_agent_death_stops_the_target(pair):
    target, agent, guardian = pair
    agent.kill()
    target.wait(2)  # the guardian's SIGTERM
    assert target.returncode == -signal.SIGTERM
    poll(lambda: not alive(guardian), 2)


def test_a_stalled_agent_is_killed_and_the_target_stopped(pair):
    target, agent, guardian = pair
    started = time.monotonic()
    agent.send_signal(signal.SIGSTOP)
    target.wait(3)
    assert time.monotonic() - started >= 0.5  # not before stall_after
    agent.wait(2)
    assert agent.returncode == -signal.SIGKILL


def test_a_beating_agent_is_left_alone(pair):
    target, agent, guardian = pair
    deadline = time.monotonic() + 1.5  # three stall periods
    while time.monotonic() < deadline:
        assert target.poll() is None and agent.poll() is None
        time.sleep(0.05)


def test_stand_down_leaves_the_target_running(pair):
    target, agent, guardian = pair
    agent.stdin.write("stand-down\n")
    agent.stdin.flush()
    assert agent.stdout.readline().strip() == "stood down"
    poll(lambda: not alive(guardian), 2)
    agent.kill()
    agent.wait(2)
    assert target.poll() is None


def test_a_reused_pid_is_never_signalled():
    target = subprocess.Popen(["sleep", "60"])
    try:
        start = process_start_time(target.pid)
        assert start is not None and process_start_time(target.pid) == start
        _stop(target.pid, start + 1, grace=0.1)  # a different process now holds that pid
        assert target.poll() is None
        _stop(target.pid, start, grace=0.1)
        assert target.wait(2) == -signal.SIGTERM
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()


def test_a_target_that_ignores_sigterm_is_killed_after_the_grace():
    target = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert target.stdout.readline().strip() == "ready"
        _stop(target.pid, process_start_time(target.pid), grace=0.2)
        assert target.wait(2) == -signal.SIGKILL
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()
