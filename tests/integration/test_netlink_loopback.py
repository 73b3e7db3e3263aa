"""LoopbackAddresses against a real kernel, in a throwaway network namespace (root only)."""

import asyncio
import os
import subprocess
import uuid

import pytest

from anycast_ctl.agent.netlink import ANYCAST_CTL_ADDR_PROTO, LoopbackAddresses
from anycast_ctl.agent.vips import AddAddress, RemoveAddress
from anycast_ctl.errors import UserError

pytestmark = pytest.mark.root

V4, V6 = "192.0.2.10/32", "2001:db8::10/128"


@pytest.fixture
def netns():
    """A fresh namespace named acx-lo<pid>-*, deleted even when the test fails."""
    from pyroute2 import netns as pr_netns

    name = f"acx-lo{os.getpid()}-{uuid.uuid4().hex[:8]}"
    pr_netns.create(name)
    try:
        yield name
    finally:
        pr_netns.remove(name)


def ip_addr_show(ns: str) -> str:
    # Reading through iproute2 (not pyroute2) is an independent witness of what the kernel holds.
    return subprocess.run(
        ["ip", "-n", ns, "address", "show", "dev", "lo"], check=True, capture_output=True, text=True
    ).stdout


def kernel_protos(ns: str) -> dict[str, int]:
    # iproute2 6.1 here cannot print IFA_PROTO; read the raw attribute from a plain dump.
    from pyroute2 import IPRoute

    with IPRoute(netns=ns) as ipr:
        return {
            f"{m.get('IFA_ADDRESS')}/{m['prefixlen']}": m.get("IFA_PROTO")
            for m in ipr.get_addr()
            if m.get("IFA_PROTO") is not None
        }


def foreign_add(ns: str, prefix: str) -> None:
    # Someone else's address: added without our protocol mark.
    subprocess.run(["ip", "-n", ns, "address", "add", prefix, "dev", "lo"], check=True)


def test_add_and_remove_v4_and_v6(netns):
    lo = LoopbackAddresses("lo", netns=netns)
    assert all(r.ok for r in (lo.add(V4), lo.add(V6)))
    assert {V4, V6} <= lo.present()
    assert lo.owned() == {V4, V6}
    shown = ip_addr_show(netns)
    assert f"inet {V4}" in shown and f"inet6 {V6}" in shown
    assert kernel_protos(netns) == {V4: ANYCAST_CTL_ADDR_PROTO, V6: ANYCAST_CTL_ADDR_PROTO}
    assert "nodad" in shown.split(V6)[1].splitlines()[0]

    assert all(r.ok for r in (lo.remove(V4), lo.remove(V6)))
    assert lo.owned() == set()
    assert V4 not in ip_addr_show(netns)


def test_reconcile_is_idempotent(netns):
    lo = LoopbackAddresses("lo", netns=netns)
    first = lo.reconcile({V4, V6})
    assert [r.action for r in first] == [AddAddress(V4), AddAddress(V6)]
    assert all(r.ok for r in first)
    assert lo.reconcile({V4, V6}) == []
    assert lo.owned() == {V4, V6}

    shrink = lo.reconcile({V6})
    assert [r.action for r in shrink] == [RemoveAddress(V4)]
    assert lo.reconcile({V6}) == []
    assert lo.present() & {V4, V6} == {V6}


def test_someone_elses_address_is_never_removed(netns):
    foreign_add(netns, V4)
    lo = LoopbackAddresses("lo", netns=netns)
    assert V4 in lo.present() and V4 not in lo.owned()

    # Desired: nothing is added a second time. Not desired: it stays.
    assert lo.reconcile({V4}) == []
    assert lo.reconcile(set()) == []
    refused = lo.remove(V4)
    assert not refused.ok and "not added by anycast-ctl" in refused.detail
    assert f"inet {V4}" in ip_addr_show(netns)


def test_shutdown_removes_only_ours(netns):
    foreign_add(netns, V4)
    lo = LoopbackAddresses("lo", netns=netns)
    lo.reconcile({V4, V6})
    assert lo.owned() == {V6}
    assert [r.action for r in lo.reconcile(set())] == [RemoveAddress(V6)]
    assert lo.present() & {V4, V6} == {V4}


def test_missing_interface_is_named(netns):
    lo = LoopbackAddresses("nosuch0", netns=netns)
    with pytest.raises(UserError) as caught:
        lo.reconcile({V4})
    assert "nosuch0" in str(caught.value) and netns in str(caught.value)


def test_reconcile_async_from_a_running_loop(netns):
    lo = LoopbackAddresses("lo", netns=netns)
    results = asyncio.run(lo.reconcile_async({V4}))
    assert [r.action for r in results] == [AddAddress(V4)]


def test_sync_methods_work_inside_a_running_loop(netns):
    # pyroute2's sync IPRoute refuses to open in a thread whose event loop is running.
    lo = LoopbackAddresses("lo", netns=netns)

    async def agent_like():
        added = lo.reconcile({V6})
        return added, lo.owned(), lo.remove(V6)

    added, owned, removed = asyncio.run(agent_like())
    assert [r.action for r in added] == [AddAddress(V6)] and owned == {V6} and removed.ok
