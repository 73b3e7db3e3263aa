"""The agent learns of its guardian's death from the loop, without a timer of its own."""

from __future__ import annotations

import asyncio
import subprocess
import time

from anycast_ctl.agent.lifeline import Lifeline

BEATS = bytearray(16)  # the heartbeat page: no guardian reads it here


def test_guardian_exit_returns_soon_after_the_guardian_exits():
    async def body():
        guardian = subprocess.Popen(["sleep", "0.3"])
        lifeline = Lifeline(-1, guardian, BEATS)
        started = time.monotonic()
        await asyncio.wait_for(lifeline.guardian_exit(), 5)
        took = time.monotonic() - started
        assert guardian.returncode == 0  # reaped
        assert 0.25 <= took < 0.3 + 0.5, took

    asyncio.run(body())


def test_guardian_exit_returns_at_once_for_a_guardian_already_gone():
    async def body():
        guardian = subprocess.Popen(["true"])
        guardian.wait()
        await asyncio.wait_for(Lifeline(-1, guardian, BEATS).guardian_exit(), 1)

    asyncio.run(body())
