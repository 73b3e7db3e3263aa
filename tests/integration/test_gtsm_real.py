"""GTSM on real FRR in namespaces (root): a router-LB session from two hops away is not accepted.

r1 renders its LB sessions as the topology does (`ttl-security hops 1`, render/plan.py). Two
peers with the same key and their own `ttl-security hops 1`, so both send with TTL 255: `near`
is linked to r1, `far` sits behind `mid`, a forwarding hop, so its segments reach r1 with
TTL 254 and r1's kernel drops them (IP_MINTTL 255). The near session comes up; the far one
never does, whatever else is right about it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.lab import state
from anycast_ctl.lab.net import daemons, netns
from anycast_ctl.lab.nodes.files import write_files
from anycast_ctl.lab.nodes.frr import start_frr, vtysh_json
from anycast_ctl.lab.poll import json_mismatch, wait_for
from anycast_ctl.render.frr import Neighbor, RouterPlan, render_frr
from anycast_ctl.render.lb_layout import LB_SESSION_HOPS
from anycast_ctl.render.node_files import frr_files

pytestmark = pytest.mark.root
VIP = "192.0.2.10/32"


def _link(tag: str, a: str, b: str, index: int) -> tuple[str, str]:
    ns_a, ns_b = f"{tag}-{a}", f"{tag}-{b}"
    netns.add_veth(ns_a, f"eth-{b}", ns_b, f"eth-{a}")
    addr_a, addr_b = f"10.110.{index}.1", f"10.110.{index}.2"
    netns.add_address(ns_a, f"eth-{b}", f"{addr_a}/30")
    netns.add_address(ns_b, f"eth-{a}", f"{addr_b}/30")
    netns.set_link_up(ns_a, f"eth-{b}")
    netns.set_link_up(ns_b, f"eth-{a}")
    return addr_a, addr_b


def _start_frr(tag: str, node: str, config_text: str) -> None:
    write_files(
        state.state_dir(tag),
        frr_files(node, config_text, per_daemon=True),
        frr_nodes=frozenset({node}),
    )
    start_frr(tag, node)


def _tcp_ext(pid: int) -> dict[str, int]:
    """TcpExt counters of the network namespace `pid` lives in."""
    lines = [ln.split() for ln in Path(f"/proc/{pid}/net/netstat").read_text().splitlines()]
    names, values = [ln for ln in lines if ln[0] == "TcpExt:"]
    return dict(zip(names[1:], map(int, values[1:]), strict=True))


def _peer(name: str, address: str, asn: int, **extra: object) -> Neighbor:
    return Neighbor(
        name=name,
        address=address,
        remote_as=asn,
        password="gtsm-key",
        max_prefix=10,
        ttl_security_hops=LB_SESSION_HOPS,
        **extra,  # type: ignore[arg-type]
    )


def test_a_session_from_two_hops_away_is_not_accepted(make_lab_tag) -> None:
    tag = make_lab_tag("acx-gtsm-")
    for node in ("r1", "near", "mid", "far"):
        netns.create_namespace(tag, node)
    r1_near, near = _link(tag, "r1", "near", 1)
    r1_mid, mid_r1 = _link(tag, "r1", "mid", 2)
    mid_far, far = _link(tag, "mid", "far", 3)
    netns.enable_forwarding(f"{tag}-mid")
    netns.add_route(f"{tag}-r1", "10.110.3.0/30", gateway=mid_r1)  # far is reachable ...
    netns.add_default_route(f"{tag}-far", mid_far)  # ... both ways, through mid
    for lb in ("near", "far"):
        netns.add_address(f"{tag}-{lb}", "lo", VIP)

    r1 = RouterPlan(
        name="r1",
        asn=65000,
        router_id="10.255.0.1",
        neighbors=(
            _peer("near", near, 65101, accept=(VIP,), is_lb=True),
            _peer("far", far, 65102, accept=(VIP,), is_lb=True),
        ),
    )
    assert render_frr(r1).count("ttl-security hops 1") == 2
    _start_frr(tag, "r1", render_frr(r1))
    for lb, asn, upstream in (("near", 65101, r1_near), ("far", 65102, r1_mid)):
        own = RouterPlan(
            name=lb,
            asn=asn,
            router_id=near if lb == "near" else far,
            networks=(VIP,),
            neighbors=(_peer("r1", upstream, 65000, accept="any"),),
        )
        _start_frr(tag, lb, render_frr(own))

    expect = {"ipv4Unicast": {"peers": {near: {"state": "Established"}}}}
    wait_for(
        lambda: json_mismatch(expect, vtysh_json(tag, "r1", "show bgp summary json")) is None,
        20,
        what="the directly linked session r1<->near Established",
    )
    # far keeps trying (connect retry 1 s, either side); r1's kernel drops what arrives at TTL
    # 254 before TCP sees it, and counts it.
    bgpd = next(
        pid
        for pid in daemons.tagged_pids(tag)
        if f"{tag}-r1" in daemons.cmdline(pid) and "bgpd" in daemons.cmdline(pid)
    )
    wait_for(
        lambda: _tcp_ext(bgpd).get("TCPMinTTLDrop", 0) > 0 or None,
        20,
        what="r1's kernel to drop a segment from far below the minimum TTL",
    )
    peers = vtysh_json(tag, "r1", "show bgp summary json")["ipv4Unicast"]["peers"]
    assert peers[far]["state"] != "Established", peers[far]
    assert vtysh_json(tag, "r1", f"show bgp neighbors {far} json")[far]["bgpState"] != "Established"
