"""How much asyncio's transports ask the kernel for per read, on the agent's steady paths.

asyncio reads up to 256 KiB a call (each transport's `max_size`) into a new bytes object.
glibc serves a request that size with mmap and frees it with munmap, so every read of a few
bytes costs two more system calls and a page fault: measured on this project's 2-core VM
(2026-12-02, CPython 3.11, a pipe holding "done\\n"), os.read of 256 KiB took 13.2 µs a read
against 1.0 µs for 64 KiB, with 20,000 mmap and munmap calls for 20,000 reads. The agent
reads ExaBGP's answers, HAProxy's stats and its peers' heartbeats several times a second for
its whole life, so it asks for 64 KiB: a large answer (a full `show stat` of 1,000 proxies,
~2 MB) just takes more reads.
"""

from __future__ import annotations

import asyncio

READ_CHUNK = 64 * 1024


def read_in_small_chunks(transport: asyncio.BaseTransport) -> None:
    """Have `transport` read at most READ_CHUNK bytes a call (a no-op for a transport that
    has no per-read size)."""
    if hasattr(transport, "max_size"):  # asyncio's own per-read size, not in its typed API
        transport.max_size = READ_CHUNK
