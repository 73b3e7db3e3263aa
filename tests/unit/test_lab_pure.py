"""The lab's pure helpers: config split, polling, partial JSON, names, state, ownership."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from anycast_ctl.errors import UserError
from anycast_ctl.lab import state
from anycast_ctl.lab.net import cleanup
from anycast_ctl.lab.poll import json_mismatch, wait_for
from anycast_ctl.render.frr import Neighbor, RouterPlan, render_frr
from anycast_ctl.render.node_files import daemon_configs


# ---------------------------------------------------------------- FRR config split
def _rendered() -> str:
    lb = Neighbor(
        name="lb1",
        address="10.1.1.2",
        remote_as=65101,
        password="k",
        accept=("192.0.2.10/32",),
        max_prefix=1,
        is_lb=True,
    )
    return render_frr(RouterPlan(name="r1", asn=65000, router_id="10.255.0.1", neighbors=(lb,)))


def test_daemon_configs_give_bgp_block_to_bgpd_only() -> None:
    parts = daemon_configs(_rendered())
    assert "router bgp 65000" in parts["bgpd"]
    assert "  neighbor 10.1.1.2 route-map RM-lb1-IN in" in parts["bgpd"]
    assert "router bgp" not in parts["zebra"] and "neighbor" not in parts["zebra"]


def test_daemon_configs_give_zebra_commands_to_zebra_only() -> None:
    parts = daemon_configs(_rendered())
    for line in ("no zebra nexthop kernel enable", "ip forwarding", "ipv6 forwarding"):
        assert line in parts["zebra"].splitlines()
        assert line not in parts["bgpd"].splitlines()


def test_daemon_configs_share_policy_and_drop_vtysh_only_lines() -> None:
    parts = daemon_configs(_rendered())
    for daemon in ("zebra", "bgpd"):
        assert "hostname r1" in parts[daemon]
        assert "ip prefix-list PL4-lb1-IN seq 5 permit 192.0.2.10/32" in parts[daemon]
        assert "route-map RM-lb1-IN permit 10" in parts[daemon]
        assert "service integrated-vtysh-config" not in parts[daemon]


def test_daemon_configs_lose_no_line() -> None:
    text = _rendered()
    parts = daemon_configs(text)
    kept = set(parts["zebra"].splitlines()) | set(parts["bgpd"].splitlines())
    assert set(text.splitlines()) - kept == {"service integrated-vtysh-config"}


def _rendered_with_bfd() -> str:
    from anycast_ctl.render.frr import BfdProfile

    lb = Neighbor(
        name="lb1",
        address="10.1.1.2",
        remote_as=65101,
        password="k",
        accept=("192.0.2.10/32",),
        max_prefix=1,
        is_lb=True,
        bfd=True,
    )
    plan = RouterPlan(
        name="r1",
        asn=65000,
        router_id="10.255.0.1",
        neighbors=(lb,),
        bfd=BfdProfile(interval_ms=100, multiplier=3),
    )
    return render_frr(plan)


def test_daemon_configs_give_the_bfd_block_to_bfdd_only() -> None:
    text = _rendered_with_bfd()
    parts = daemon_configs(text)
    assert sorted(parts) == ["bfdd", "bgpd", "zebra"]
    assert "  transmit-interval 100" in parts["bfdd"].splitlines()
    assert "hostname r1" in parts["bfdd"]
    for daemon in ("zebra", "bgpd"):
        assert "bfd" not in parts[daemon].splitlines()
        assert "  transmit-interval 100" not in parts[daemon].splitlines()
    assert " neighbor 10.1.1.2 bfd profile anycast-lb" in parts["bgpd"].splitlines()
    assert "router bgp 65000" not in parts["bfdd"]
    kept = set().union(*(set(p.splitlines()) for p in parts.values()))
    assert set(text.splitlines()) - kept == {"service integrated-vtysh-config"}


def test_daemon_configs_without_bfd_have_no_bfdd_part() -> None:
    assert sorted(daemon_configs(_rendered())) == ["bgpd", "zebra"]


# ---------------------------------------------------------------- polling
def test_wait_for_returns_first_truthy_value() -> None:
    values: Iterator[object] = iter([0, None, [], {"up": 1}, "later"])
    assert wait_for(lambda: next(values), timeout=5, interval=0.001) == {"up": 1}


def test_wait_for_times_out_quoting_last_value() -> None:
    start = time.monotonic()
    with pytest.raises(
        TimeoutError, match=r"route: not satisfied within 0.05s; last observed: \[\]"
    ):
        wait_for(lambda: [], 0.05, interval=0.01, what="route")
    assert time.monotonic() - start < 1.0


def test_wait_for_treats_ignored_exceptions_as_not_yet() -> None:
    calls = itertools.count()

    def flaky() -> str:
        if next(calls) < 2:
            raise ConnectionRefusedError("vty not up")
        return "ok"

    assert wait_for(flaky, timeout=5, interval=0.001, ignore=(ConnectionRefusedError,)) == "ok"
    with pytest.raises(TimeoutError, match="vty not up"):
        wait_for(
            lambda: (_ for _ in ()).throw(ConnectionRefusedError("vty not up")),
            0.02,
            interval=0.005,
            ignore=(ConnectionRefusedError,),
        )


def test_wait_for_propagates_other_exceptions() -> None:
    with pytest.raises(ZeroDivisionError):
        wait_for(lambda: 1 / 0, timeout=5)


@pytest.mark.parametrize(
    "expected, actual, reason",
    [
        ({"a": {"state": "Established"}}, {"a": {"state": "Established", "x": 1}, "b": 2}, None),
        (
            {"a": {"state": "Established"}},
            {"a": {"state": "Active"}},
            "a.state: expected 'Established', got 'Active'",
        ),
        ({"peers": {"10.0.0.2": {}}}, {"peers": {}}, "peers: missing key '10.0.0.2'"),
        ([{"ip": "10.0.0.2"}], [{"ip": "10.0.0.2", "x": 1}], None),
        ({"n": [1, 2]}, {"n": [1]}, "n: expected a list of 2, got [1]"),
        ({"a": {}}, {"a": 3}, "a: expected an object, got 3"),
    ],
)
def test_json_mismatch(expected, actual, reason) -> None:
    assert json_mismatch(expected, actual) == reason


# ---------------------------------------------------------------- names and state
def test_namespace_name_carries_tag_prefix() -> None:
    assert state.namespace_name("acx-demo", "r1") == "acx-demo-r1"


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "a b", "../etc", "x" * 41])
def test_bad_tag_is_a_user_error(bad: str) -> None:
    with pytest.raises(UserError):
        state.namespace_name(bad, "r1")


def test_state_round_trips_and_records_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(state, "STATE_ROOT", tmp_path)
    state.record_namespace("acx-u", "acx-u-r1")
    state.record_namespace("acx-u", "acx-u-r1")
    state.record_file("acx-u", "/run/frr/acx-u-r1")
    state.record_daemon("acx-u", state.DaemonRecord("r1", "zebra", 42, 7, ["zebra"], "acx-u-r1"))
    loaded = state.load("acx-u")
    assert loaded is not None
    assert loaded.namespaces == ["acx-u-r1"]
    assert loaded.files == ["/run/frr/acx-u-r1"]
    assert loaded.daemons[0].pid == 42 and loaded.daemons[0].start_time == 7
    assert state.all_tags() == ["acx-u"]


def test_cleanup_of_a_tag_never_claims_a_longer_tags_namespaces(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(state, "STATE_ROOT", tmp_path)
    state.record_namespace("acx-b", "acx-b-r1")  # lab "acx-b" exists; "acx" is a prefix of it
    names = ["acx-r1", "acx-b-r1", "acx-lb1", "acxz-r1", "other"]
    assert cleanup._owned(names, "acx") == ["acx-lb1", "acx-r1"]
    assert cleanup._owned(names, "acx-b") == ["acx-b-r1"]


def test_leftovers_are_falsy_only_when_empty() -> None:
    assert not cleanup.Leftovers("t")
    left = cleanup.Leftovers("t", namespaces=["t-r1"], processes=["42 (zebra)"])
    assert left
    assert str(left) == "lab t left behind processes: 42 (zebra); namespaces: t-r1"
