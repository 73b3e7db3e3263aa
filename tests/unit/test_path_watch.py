"""The stats socket's removal as an event: inotify's events decoded, and the watch for real."""

from __future__ import annotations

import asyncio
import struct

from anycast_ctl.agent import path_watch
from anycast_ctl.agent.path_watch import (
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_MOVED_FROM,
    IN_Q_OVERFLOW,
    RemovalWatch,
    left,
)

IN_CREATE, IN_MOVED_TO = 0x100, 0x080


def event(mask: int, name: str = "", wd: int = 1) -> bytes:
    raw = name.encode()
    padded = raw + b"\0" * (-(len(raw) + 1) % 16 + 1) if raw else b""
    return struct.pack("=iIII", wd, mask, 0, len(padded)) + padded


def test_our_name_deleted_or_renamed_away_has_left():
    assert left(event(IN_DELETE, "admin.sock"), "admin.sock")
    assert left(event(IN_MOVED_FROM, "admin.sock"), "admin.sock")


def test_other_names_and_arrivals_have_not():
    assert not left(event(IN_DELETE, "admin.sock.1234.tmp"), "admin.sock")
    # a reload that renames a new socket over ours: a new inode, for the ticks to reconnect
    assert not left(event(IN_MOVED_TO, "admin.sock"), "admin.sock")
    assert not left(event(IN_CREATE, "admin.sock"), "admin.sock")
    assert not left(b"", "admin.sock")


def test_the_directory_going_or_lost_events_may_mean_it_left():
    for mask in (IN_DELETE_SELF, IN_IGNORED, IN_Q_OVERFLOW):
        assert left(event(mask), "admin.sock")


def test_every_event_of_a_read_is_looked_at():
    burst = event(IN_CREATE, "x") + event(IN_DELETE, "y") + event(IN_DELETE, "admin.sock")
    assert left(burst, "admin.sock")
    assert not left(event(IN_CREATE, "x") + event(IN_DELETE, "y"), "admin.sock")


def test_the_watch_reports_a_removal_and_not_a_neighbour(tmp_path):
    async def body():
        target, neighbour = tmp_path / "admin.sock", tmp_path / "other"
        target.write_text("")
        neighbour.write_text("")
        seen = asyncio.Event()
        watch = RemovalWatch(target, seen.set)
        assert watch.start()
        try:
            neighbour.unlink()
            await asyncio.sleep(0.05)
            assert not seen.is_set()
            target.unlink()
            await asyncio.wait_for(seen.wait(), 2)
        finally:
            watch.stop()

    asyncio.run(body())


def test_a_refused_watch_says_so_once_and_returns_false(tmp_path, caplog):
    async def body():
        watch = RemovalWatch(tmp_path / "missing-dir" / "admin.sock", lambda: None)
        assert watch.start() is False
        watch.stop()  # nothing to stop: harmless

    with caplog.at_level("WARNING", logger=path_watch.__name__):
        asyncio.run(body())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "at the next tick" in warnings[0], warnings
