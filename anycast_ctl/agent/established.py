"""Read the agent's established TCP connections (`ss -Htn state established`): the I/O.

The agent runs in the node's network namespace, so a plain `ss` sees the node's sockets.
Counting them per VIP is pure (`anycast_ctl.chance.connections.count_by_vip`).
"""

from __future__ import annotations

import asyncio

SS_ARGV = ("ss", "-Htn", "state", "established")


class EstablishedError(RuntimeError):
    """`ss` could not be run or failed: the count is unknown (never reported as 0)."""


async def read_established(timeout: float = 2.0) -> str:
    try:
        proc = await asyncio.create_subprocess_exec(
            *SS_ARGV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except FileNotFoundError:
        raise EstablishedError("ss is not installed (apt-get install iproute2)") from None
    except OSError as exc:
        raise EstablishedError(f"cannot run ss: {exc}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()  # our own child
        await proc.wait()
        raise EstablishedError(f"ss: no answer within {timeout} s") from None
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip() or f"exit {proc.returncode}"
        raise EstablishedError(f"ss: {detail}")
    return out.decode(errors="replace")
