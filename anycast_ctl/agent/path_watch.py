"""A file leaving its directory, as an event: inotify on the directory (Linux).

For the HAProxy stats socket. HAProxy's death closes the stats connection the agent keeps
open (checks/haproxy.py); the socket file going away while a HAProxy runs (a reload onto
another path, a cleanup that removed it) closes nothing, and only the next tick's stat() would
find it. With this watch the agent handles the removal at once, as it handles a closed
connection: one connect then tells a death (the file gone: hard) from a socket put back.

Pure: `left(events, name)`. I/O: `RemovalWatch`, one inotify descriptor on the directory, read
from the event loop: it wakes only when an entry of that directory is removed or renamed
away, never per tick.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# <sys/inotify.h>
IN_MOVED_FROM = 0x040
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
WATCHED = IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
# The directory itself went (or the kernel dropped events): the file may have gone with it.
_ANYTHING = IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW | IN_IGNORED
_HEADER = struct.Struct("=iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


def left(events: bytes, name: str) -> bool:
    """Pure: whether the inotify events in `events` may mean that `name` left the directory:
    deleted or renamed away, the directory itself removed or moved, or events lost."""
    wanted = os.fsencode(name)
    offset = 0
    while offset + _HEADER.size <= len(events):
        _, mask, _, length = _HEADER.unpack_from(events, offset)
        start = offset + _HEADER.size
        entry = events[start : start + length].rstrip(b"\0")
        offset = start + length
        if mask & _ANYTHING or (mask & (IN_DELETE | IN_MOVED_FROM) and entry == wanted):
            return True
    return False


class RemovalWatch:
    """Calls `on_removed()` from the event loop whenever `path` may have left its directory."""

    def __init__(self, path: Path, on_removed: Callable[[], object]) -> None:
        self.path = path
        self.on_removed = on_removed
        self._fd = -1

    def start(self) -> bool:
        """Watch from now on; False (and one warning) where inotify is refused: the ticks'
        stat() of the path still finds a removal, a tick later."""
        import ctypes  # ~0.3 MiB, only for a node that watches a stats socket

        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd >= 0 and libc.inotify_add_watch(fd, os.fsencode(self.path.parent), WATCHED) < 0:
            os.close(fd)
            fd = -1
        if fd < 0:
            err = ctypes.get_errno()
            log.warning(
                "cannot watch %s for the removal of %s (%s): found at the next tick instead",
                self.path.parent,
                self.path.name,
                os.strerror(err),
            )
            return False
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)
        return True

    def _readable(self) -> None:
        try:
            events = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        if left(events, self.path.name):
            self.on_removed()

    def stop(self) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
