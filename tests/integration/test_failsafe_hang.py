"""A hung ExaBGP and a hung agent leave every router's FIB within 1 s (real FRR, ExaBGP,
HAProxy and agent in namespaces, the default topology; lb1 is the subject).

SIGSTOP freezes the process without closing anything: to the router the BGP session looks
healthy until its hold timer (9 s here, minutes in production). The agent's ExaBGP watch and
the lifeline guardian must do better. Every time is measured on r1's kernel FIB with a
bounded poll.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.topology_up import Lab

pytestmark = pytest.mark.root

DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
BOUND = 1.0  # seconds from the freeze to lb1 out of r1's FIB


@pytest.fixture
def lab(lab_tag):
    lab = Lab.up(DEFAULT, tag=lab_tag, timeout=60)
    # Start-up is over once every VIP had its first decision: the tight limits apply then.
    wait_for(
        lambda: "tight stall limits" in (lab.dir / "lb1" / "exabgp.log").read_text(),
        10,
        what="lb1's agent to finish start-up",
    )
    return lab


def r1_uses(lab: Lab) -> list[str]:
    return lab.fib_nexthops("r1", "web")


def seconds_until(predicate, timeout: float) -> float:
    start = time.monotonic()
    wait_for(predicate, timeout, interval=0.005)
    return time.monotonic() - start


def test_a_frozen_exabgp_is_killed_and_leaves_the_fib_within_1s(lab):
    exabgp = lab.daemon("lb1", "exabgp")
    agent = lab.agent_pid("lb1")
    assert set(r1_uses(lab)) == {"lb1", "lb2", "lb3"}
    os.kill(exabgp.pid, signal.SIGSTOP)
    took = seconds_until(lambda: "lb1" not in r1_uses(lab), timeout=15)
    print(f"ExaBGP SIGSTOP -> lb1 out of r1's FIB in {took * 1000:.0f} ms")
    assert took <= BOUND, f"lb1 still in r1's FIB {took:.3f}s after ExaBGP froze"
    assert set(r1_uses(lab)) == {"lb2", "lb3"}
    # The guardian killed ExaBGP (not the hold timer), and the agent then exited by itself.
    wait_for(lambda: not exabgp.running(), 2, what="ExaBGP killed by the guardian")
    wait_for(lambda: not daemons.is_running(agent), 5, what="the agent to exit")
    log = (lab.dir / "lb1" / "exabgp.log").read_text()
    assert "has not answered a command" in log


def test_a_frozen_agent_is_killed_and_leaves_the_fib_within_1s(lab):
    exabgp = lab.daemon("lb1", "exabgp")
    agent = lab.agent_pid("lb1")
    assert agent is not None and set(r1_uses(lab)) == {"lb1", "lb2", "lb3"}
    os.kill(agent, signal.SIGSTOP)
    took = seconds_until(lambda: "lb1" not in r1_uses(lab), timeout=15)
    print(f"agent SIGSTOP -> lb1 out of r1's FIB in {took * 1000:.0f} ms")
    assert took <= BOUND, f"lb1 still in r1's FIB {took:.3f}s after the agent froze"
    assert set(r1_uses(lab)) == {"lb2", "lb3"}
    wait_for(lambda: not daemons.is_running(agent), 2, what="the guardian to kill the agent")
    wait_for(lambda: not exabgp.running(), 3, what="the guardian to stop ExaBGP")
