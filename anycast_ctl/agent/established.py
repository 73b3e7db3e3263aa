"""Read the established TCP connections to the agent's VIPs (`ss` with a filter): the I/O.

The agent runs in the node's network namespace, so a plain `ss` sees the node's sockets. The
filter (`anycast_ctl.chance.connections.ss_filter_argv`) runs in the kernel: a node holding
100k connections to other services does not make each count parse them. Counting the lines
per VIP is pure (`anycast_ctl.chance.connections.count_by_vip`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from anycast_ctl.chance.connections import ss_filter_argv


class EstablishedError(RuntimeError):
    """`ss` could not be run or failed: the count is unknown (never reported as 0)."""


async def read_established(vips: Iterable[str], timeout: float = 2.0) -> str:
    """`ss` lines of the established connections whose local address is one of `vips`."""
    argv = ss_filter_argv(vips)
    if not argv:
        return ""  # no VIP: nothing can be left, and nothing to ask the kernel
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
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
