"""The loop watchdog fires only when the event loop stops turning."""

import asyncio
import threading
import time

from anycast_ctl.agent.watchdog import LoopWatchdog


def test_watchdog_fires_when_the_loop_is_blocked():
    fired = threading.Event()
    dog = LoopWatchdog(stall_limit=0.2, on_stall=fired.set)

    async def main():
        dog.start(asyncio.get_running_loop())
        await asyncio.sleep(0.05)
        # A blocking call inside the loop is exactly the failure being detected.
        deadline = time.monotonic() + 2.0
        while not fired.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        dog.stop()

    asyncio.run(main())
    assert fired.is_set() and dog.fired


def test_watchdog_stays_quiet_while_the_loop_turns():
    fired = threading.Event()
    dog = LoopWatchdog(stall_limit=0.2, on_stall=fired.set)

    async def main():
        dog.start(asyncio.get_running_loop())
        for _ in range(20):  # 0.6 s of a healthy loop, three stall limits
            await asyncio.sleep(0.03)
        dog.stop()

    asyncio.run(main())
    assert not fired.is_set()
