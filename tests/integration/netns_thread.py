"""Run this thread inside a test's network namespace, for code that must live there (I/O)."""

from __future__ import annotations

import contextlib
import ctypes
import os

CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def this_thread_in(namespace: str):
    """This thread (the asyncio loop's, and every child it forks) inside `namespace`."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        assert libc.setns(target, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        yield
    finally:
        assert libc.setns(own, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        os.close(own)
        os.close(target)
