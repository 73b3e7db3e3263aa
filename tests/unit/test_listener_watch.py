"""The listener watch's socket, for real: unprivileged, and a refused subscription is no crash.

The kernel lets anyone join the sock_diag destroy groups, so these run without root, in the
test's own namespace; they look only at sockets they bind themselves (ports no one else uses).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket

import pytest

from anycast_ctl.agent.listener_events import Endpoint
from anycast_ctl.agent.sockdiag import ListenerWatch, open_destroy_socket


def bound_listener() -> socket.socket:
    """Bound to a port of its own and listening (never a probe socket closed before the watch
    starts: the kernel's broadcast of that close could reach it late)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def subscribable() -> bool:
    try:
        open_destroy_socket([1]).close()
    except OSError:
        return False
    return True


async def until(predicate, within: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.mark.skipif(not subscribable(), reason="this kernel refuses the sock_diag destroy groups")
def test_a_listener_closing_on_a_watched_port_names_its_checks_and_others_do_not():
    async def main() -> tuple[list[set[str]], int]:
        watched, other = bound_listener(), bound_listener()
        hits: list[set[str]] = []
        endpoint = Endpoint("127.0.0.1", watched.getsockname()[1])
        watch = ListenerWatch({endpoint: {"web"}}, hits.append)
        assert watch.start()
        try:
            other.close()  # first: the filter drops it, so it never reaches us
            watched.close()
            await until(lambda: hits)
            return hits, watch.messages
        finally:
            watch.stop()

    hits, messages = asyncio.run(main())
    assert (hits, messages) == ([{"web"}], 1)


def test_a_refused_subscription_logs_one_warning_and_leaves_the_agent_to_its_ticks(caplog):
    async def main() -> bool:
        watch = ListenerWatch({Endpoint("127.0.0.1", 1): {"web"}}, lambda names: None)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.open(os.devnull, os.O_RDONLY)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no new descriptor
        try:
            return watch.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    with caplog.at_level(logging.WARNING, logger="anycast_ctl.agent.sockdiag"):
        started = asyncio.run(main())
    assert started is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot watch for listeners closing" in warnings[0], warnings
