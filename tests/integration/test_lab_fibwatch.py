"""FibWatcher against route changes we make ourselves in a throwaway namespace (root).

Each change is made with `ip route` between two clock readings; the watcher's timestamp for
it must fall between them (give or take the reader thread's scheduling delay), which proves it
is the notification's time and not a later poll.
"""

from __future__ import annotations

import time

import pytest

from anycast_ctl.lab.net import daemons, netns
from anycast_ctl.lab.observe.fibwatch import FibWatcher, with_any, without

pytestmark = pytest.mark.root

VIP4, VIP6 = "192.0.2.10/32", "fd00:99:1::10/128"
GW = ["10.9.0.2", "10.9.0.3", "10.9.0.4"]
# The kernel queues the notification before `ip` exits, but the reader thread stamps it when
# it gets to run: on a loaded 2-core VM that was once 0.1 ms after `ip` had exited. A poll
# would be late by its whole interval, far more than this.
READ_DELAY = 0.02
GW6 = ["fd00:99::2", "fd00:99::3"]


@pytest.fixture
def router(make_lab_tag):
    """A namespace with one veth into a peer namespace and on-link gateways to route through."""
    tag = make_lab_tag("acx-h11-")
    r = netns.create_namespace(tag, "r").name
    p = netns.create_namespace(tag, "p").name
    netns.add_veth(r, "eth-p", p, "eth-r")
    for ns, ifname in ((r, "eth-p"), (p, "eth-r")):
        netns.set_link_up(ns, ifname)
    netns.add_address(r, "eth-p", "10.9.0.1/24")
    netns.add_address(r, "eth-p", "fd00:99::1/64")
    return tag, r, p


def ip(tag: str, ns: str, *args: str) -> tuple[float, float]:
    """Run `ip ARGS` in ns; return the monotonic times just before and just after."""
    before = time.monotonic()
    result = daemons.run(tag, ["ip", *args], netns=ns, timeout=10)
    after = time.monotonic()
    assert result.ok, result.stderr
    return before, after


def test_ipv4_nexthop_changes_are_timed_at_the_event(router):
    tag, r, _ = router
    with FibWatcher(r, VIP4) as fib:
        assert fib.current().gateways == frozenset()

        before, after = ip(
            tag, r, "route", "add", VIP4, "nexthop", "via", GW[0], "nexthop", "via", GW[1]
        )
        seen = fib.wait_for(with_any({GW[0]}), since=before, timeout=2)
        assert before <= seen <= after + READ_DELAY
        assert fib.current().gateways == {GW[0], GW[1]}

        before, after = ip(
            tag, r, "route", "replace", VIP4, "nexthop", "via", GW[1], "nexthop", "via", GW[2]
        )
        gone = fib.wait_for(without({GW[0]}), since=before, timeout=2)
        assert before <= gone <= after + READ_DELAY
        assert fib.current().gateways == {GW[1], GW[2]}

        before, after = ip(tag, r, "route", "del", VIP4)
        empty = fib.wait_for(lambda s: not s.hops, since=before, timeout=2)
        assert before <= empty <= after + READ_DELAY


def test_a_state_that_already_holds_counts_from_since(router):
    tag, r, _ = router
    ip(tag, r, "route", "add", VIP4, "via", GW[0])
    with FibWatcher(r, VIP4) as fib:
        assert fib.current().gateways == {GW[0]}
        later = time.monotonic()
        assert fib.wait_for(without({GW[1]}), since=later, timeout=1) == later
        with pytest.raises(TimeoutError, match=GW[0]):
            fib.wait_for(without({GW[0]}), since=later, timeout=0.2)


def test_lowest_metric_route_is_the_one_in_use(router):
    tag, r, _ = router
    with FibWatcher(r, VIP4) as fib:
        ip(tag, r, "route", "add", VIP4, "via", GW[0], "metric", "100")
        before, _ = ip(tag, r, "route", "add", VIP4, "via", GW[1], "metric", "20")
        fib.wait_for(with_any({GW[1]}), since=before, timeout=2)
        assert fib.current().gateways == {GW[1]}
        before, _ = ip(tag, r, "route", "del", VIP4, "via", GW[1], "metric", "20")
        fib.wait_for(with_any({GW[0]}), since=before, timeout=2)
        assert fib.current().gateways == {GW[0]}


def test_ipv6_sibling_delete_removes_only_that_nexthop(router):
    tag, r, _ = router
    with FibWatcher(r, VIP6) as fib:
        before, _ = ip(
            tag, r, "-6", "route", "add", VIP6, "nexthop", "via", GW6[0], "nexthop", "via", GW6[1]
        )
        fib.wait_for(lambda s: s.gateways == {GW6[0], GW6[1]}, since=before, timeout=2)

        # The kernel notifies this with an RTM_DELROUTE naming only GW6[0].
        before, after = ip(tag, r, "-6", "route", "del", VIP6, "via", GW6[0])
        gone = fib.wait_for(without({GW6[0]}), since=before, timeout=2)
        assert before <= gone <= after + READ_DELAY
        assert fib.current().gateways == {GW6[1]}

        before, _ = ip(tag, r, "-6", "route", "append", VIP6, "via", GW6[0])
        fib.wait_for(with_any({GW6[0]}), since=before, timeout=2)
        assert fib.current().gateways == {GW6[0], GW6[1]}


def test_watcher_outside_any_namespace_refuses():
    with pytest.raises(Exception, match="no network namespace"):
        FibWatcher("acx-h11-does-not-exist", VIP4).start()
