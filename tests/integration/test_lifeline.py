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
lifeline = Lifeline.start(
    int(sys.argv[1]),
    stall_after=0.5,
    startup_stall_after=float(sys.argv[2]),
    grace=float(sys.argv[3]),
)
print(lifeline.guardian.pid, flush=True)
async def main():
    beats = asyncio.create_task(lifeline.heartbeat(0.05))
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() == "tighten":
        lifeline.tighten()
        print("tightened", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() == "exabgp-hung":
        lifeline.exabgp_hung()
        print("told", flush=True)
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
def make_pair():
    """make_pair(startup) -> (target, agent, guardian pid): a stand-in ExaBGP and an agent
    guarding it, stall limits 0.5 s (tight) and `startup` (until it tightens)."""
    procs: list[tuple[subprocess.Popen, subprocess.Popen, int]] = []

    def make(startup: float = 0.5, grace: float = 0.5):
        target = subprocess.Popen(["sleep", "60"])
        agent = subprocess.Popen(
            [sys.executable, "-c", AGENT, str(target.pid), str(startup), str(grace)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert agent.stdout is not None
        guardian = int(agent.stdout.readline())
        procs.append((target, agent, guardian))
        return target, agent, guardian

    yield make
    for target, agent, guardian in procs:
        for proc in (agent, target):
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
        if alive(guardian):
            os.kill(guardian, signal.SIGKILL)


@pytest.fixture
def pair(make_pair):
    return make_pair()


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
    assert target.returncode == -signal.SIGKILL  # no SIGTERM grace after a stall
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


def say(agent, line: str, answer: str) -> None:
    agent.stdin.write(line + "\n")
    agent.stdin.flush()
    assert agent.stdout.readline().strip() == answer


def test_before_tighten_the_loose_startup_limit_applies(make_pair):
    target, agent, guardian = make_pair(startup=3.0)
    started = time.monotonic()
    agent.send_signal(signal.SIGSTOP)
    target.wait(6)
    took = time.monotonic() - started
    assert took >= 3.0, f"stopped after {took:.2f}s: the tight limit was used during start-up"


def test_after_tighten_the_tight_limit_applies(make_pair):
    target, agent, guardian = make_pair(startup=3.0)
    say(agent, "tighten", "tightened")
    started = time.monotonic()
    agent.send_signal(signal.SIGSTOP)
    target.wait(3)
    took = time.monotonic() - started
    assert 0.5 <= took < 2.0, f"stopped after {took:.2f}s, not at the tight 0.5 s limit"
    agent.wait(2)
    assert agent.returncode == -signal.SIGKILL


def test_exabgp_hung_kills_the_target_at_once_and_leaves_the_agent(make_pair):
    # A long SIGTERM grace: if the guardian went through SIGTERM first, the kill would come
    # only after it.
    target, agent, guardian = make_pair(grace=5.0)
    # A target that ignores SIGTERM and is stopped, like a frozen ExaBGP: only SIGKILL works.
    target.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    say(agent, "exabgp-hung", "told")
    target.wait(2)
    assert target.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 3.0  # SIGKILL at once, not SIGTERM + 5 s grace
    poll(lambda: not alive(guardian), 2)
    assert agent.poll() is None  # the agent exits by itself (it sees EOF from ExaBGP)
