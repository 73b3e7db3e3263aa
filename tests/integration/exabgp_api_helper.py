"""A scripted API process for tests/integration/test_exabgp_real.py: the agent's ExaBGP side
(RouteWriter, Speaker, Lifeline) without its checks.

ExaBGP runs it as `python exabgp_api_helper.py agent run CONFIG`. It reads commands, one per
line, from the FIFO CONFIG.cmd ("announce PREFIX", "withdraw PREFIX") and appends what happened
to CONFIG.log ("ready ...", "announce PREFIX done|error|refused", "peer ADDRESS up|down");
"announce-many P1,P2,..." / "withdraw-many ..." send the batched lines, pipelined.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

from anycast_ctl.agent.exabgp import PeerState, RouteWriter, UndeclaredPrefix
from anycast_ctl.agent.lifeline import Lifeline, exabgp_parent
from anycast_ctl.agent.speaker import stdio_speaker
from anycast_ctl.config.node import load_node_config


def main() -> int:
    config_path = Path(sys.argv[-1])
    config = load_node_config(config_path)
    writer = RouteWriter(config)
    report_path = config_path.with_suffix(".log")
    fifo = config_path.with_suffix(".cmd")

    def report(text: str) -> None:
        with report_path.open("a") as out:
            out.write(text + "\n")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[str] = asyncio.Queue()

        def read_fifo() -> None:
            # Opened read-write, so this end never sees EOF: reopening after each writer
            # raced the next writer, whose line could land in the closing end and be lost.
            with os.fdopen(os.open(fifo, os.O_RDWR), "r") as stream:
                for line in stream:
                    loop.call_soon_threadsafe(commands.put_nowait, line.strip())

        threading.Thread(target=read_fifo, daemon=True).start()
        target = exabgp_parent()
        lifeline = Lifeline.start(target, stall_after=1.0, grace=1.0) if target else None

        def on_event(event) -> None:
            if isinstance(event, PeerState):
                report(f"peer {event.address} {'up' if event.up else 'down'}")

        speaker = await stdio_speaker(on_event=on_event, ack_timeout=5.0)
        tasks = [asyncio.create_task(speaker.run_reader())]
        if lifeline:
            tasks.append(asyncio.create_task(lifeline.heartbeat(0.2)))
        report(f"ready pid={os.getpid()} guardian={lifeline.guardian.pid if lifeline else 0}")

        async def serve() -> None:
            while True:
                verb, _, prefix = (await commands.get()).partition(" ")
                if verb in ("announce-many", "withdraw-many"):
                    # "VERB-many P1,P2,...": the batched lines, written at once (pipelined)
                    prefixes = prefix.split(",")
                    try:
                        lines = (
                            writer.announce_many(prefixes)
                            if verb == "announce-many"
                            else writer.withdraw_many(prefixes)
                        )
                    except UndeclaredPrefix:
                        report(f"{verb} {prefix} refused")
                        continue
                    answers = await speaker.send_many(lines)
                    verdict = "done" if all(answers) else "error"
                    report(f"{verb} {prefix} {verdict} lines={len(lines)}")
                    continue
                try:
                    line = (
                        writer.announce(prefix) if verb == "announce" else writer.withdraw(prefix)
                    )
                except UndeclaredPrefix:
                    report(f"{verb} {prefix} refused")
                    continue
                report(f"{verb} {prefix} {'done' if await speaker.send(line) else 'error'}")

        tasks.append(asyncio.create_task(serve()))
        await asyncio.wait(
            tasks[:2], return_when=asyncio.FIRST_COMPLETED
        )  # reader EOF or guardian gone

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
