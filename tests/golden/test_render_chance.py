"""Golden files for the second-chance ruleset of an LB node (render/chance.py).

Input: topologies/default.yaml, lb1 withdrawn, eight fixed flows; for both families
chance/dual-stack.yaml (default plus an IPv6 VIP and client prefix). Regenerate with
UPDATE_GOLDEN=1 after an intended change, and read the diff: it is what nft will load.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.chance import ChancePlan, Peer, overlay_devices, plan_for, removal, ruleset
from anycast_ctl.sim.fabric import Event, Fabric
from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.flows import FlowBatch, generate
from anycast_ctl.sim.owners import (
    ForwardEntry,
    forward_entries,
    owned_batch,
    owner_candidates,
    owner_change,
)

HERE = Path(__file__).parent / "chance"
TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
DUAL_STACK = HERE / "dual-stack.yaml"
FLOWS = [(f"198.18.1.{10 + i}", 40000 + 7 * i) for i in range(8)]
FLOWS6 = [(f"2001:db8:c1::{10 + i:x}", 40000 + 7 * i) for i in range(8)]


def check_golden(name: str, text: str) -> None:
    golden = HERE / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no {golden}; run with UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text(), (
        f"{name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"
    )


def _likely(node: str) -> tuple[str, ...]:
    topo = load_topology(TOPOLOGY)
    (batch,) = list(generate(topo, 20_000, seed=1))
    change = owner_change(Fabric.from_topology(topo), Event("withdraw", "lb1"), batch)
    return owner_candidates(change, node)


def _entries(node: str) -> tuple[ForwardEntry, ...]:
    topo = load_topology(TOPOLOGY)
    flows = FlowArrays.from_tuples([(s, "192.0.2.10", 6, p, 443) for s, p in FLOWS])
    n = len(FLOWS)
    batch = FlowBatch(flows, np.zeros(n, np.int64), np.zeros(n, np.int64), np.ones(n))
    change = owner_change(Fabric.from_topology(topo), Event("withdraw", "lb1"), batch)
    return tuple(forward_entries(change, node))


@pytest.mark.parametrize(
    ("name", "node", "alive", "hop_limit"),
    [
        ("lb2-withdraw-lb1.nft", "lb2", {"lb1", "lb2", "lb3"}, 1),
        ("lb3-withdraw-lb1-hop2.nft", "lb3", {"lb1", "lb2", "lb3"}, 2),
        # lb3 falls back to lb2 first (the range it took over), then along the ring (lb1).
        # lb1 down: its flows are lost, so no entry points at it and the chain skips it.
        ("lb2-lb1-down.nft", "lb2", {"lb2", "lb3"}, 1),
    ],
)
def test_ruleset_matches_golden(name: str, node: str, alive: set[str], hop_limit: int) -> None:
    topo = load_topology(TOPOLOGY)
    plan = plan_for(
        topo,
        node,
        alive=frozenset(alive),
        entries=_entries(node),
        likely=_likely(node),
        hop_limit=hop_limit,
    )
    check_golden(name, ruleset(plan))


def test_entries_name_both_kinds_of_owner() -> None:
    # The fixed flows cover lb2's own gain (from lb1) and lb3's collateral gain (from lb2).
    assert {e.owner for e in _entries("lb2")} == {"lb1"}
    assert {e.owner for e in _entries("lb3")} == {"lb2"}


def test_overlay_devices_one_per_level_flooding_only_to_live_peers() -> None:
    topo = load_topology(TOPOLOGY)
    plan = plan_for(topo, "lb3", alive=frozenset({"lb2", "lb3"}), hop_limit=2)
    devices = overlay_devices(plan)
    assert [(d.name, d.vni, d.address) for d in devices] == [
        ("acxch1", 0xAC5C01, "169.254.101.3/24"),
        ("acxch2", 0xAC5C02, "169.254.102.3/24"),
    ]
    lb2 = str(topo.address_plan().interface("lb2", "r1").ipv4.ip)
    assert all(d.remotes == (lb2,) and d.mtu is None for d in devices)
    assert removal() == (
        "table ip anycast_chance {}\ndelete table ip anycast_chance\n"
        "table ip6 anycast_chance {}\ndelete table ip6 anycast_chance\n"
    )


def _dual_stack_entries(node: str) -> tuple[ForwardEntry, ...]:
    topo = load_topology(DUAL_STACK)
    fabric = Fabric.from_topology(topo)
    out: list[ForwardEntry] = []
    for vip, flows in (("192.0.2.10", FLOWS), ("2001:db8:f::10", FLOWS6)):
        batch = owned_batch(topo, [(s, p, vip, 443) for s, p in flows])
        out += forward_entries(owner_change(fabric, Event("withdraw", "lb1"), batch), node)
    return tuple(out)


@pytest.mark.parametrize(
    ("name", "node", "hop_limit"),
    [("lb2-dual-stack.nft", "lb2", 1), ("lb3-dual-stack-hop2.nft", "lb3", 2)],
)
def test_dual_stack_ruleset_has_an_ip6_table_beside_the_ip_one(
    name: str, node: str, hop_limit: int
) -> None:
    topo = load_topology(DUAL_STACK)
    entries = _dual_stack_entries(node)
    assert {":" in e.flow[2] for e in entries} == {False, True}  # both families need entries
    plan = plan_for(
        topo,
        node,
        alive=frozenset({"lb1", "lb2", "lb3"}),
        entries=entries,
        likely=_likely(node),
        hop_limit=hop_limit,
    )
    assert plan.families() == (4, 6)
    text = ruleset(plan)
    check_golden(name, text)
    ip6 = text[text.index("table ip6 anycast_chance {\n") :]
    assert "2001:db8:f::10 . 443" in ip6 and "192.0.2.10" not in ip6
    assert "ip6 saddr . tcp sport . ip6 daddr . tcp dport vmap @owners" in ip6
    to_peer = r'dup to fd00:ac5c:1::\d device "acxch1" counter name forwarded_lb\d drop'
    assert re.search(to_peer, ip6)
    assert "udp dport 4789" not in ip6  # VXLAN rides the IPv4 underlay: the ip table guards it


def test_each_live_peer_has_its_counter_and_every_forwarding_rule_counts_into_one() -> None:
    plan = plan_for(
        load_topology(TOPOLOGY), "lb3", alive=frozenset({"lb1", "lb2", "lb3"}), hop_limit=2
    )
    text = ruleset(plan)
    assert re.findall(r"^\tcounter (\S+) ", text, re.M) == [
        "forwarded_lb1", "forwarded_lb2", "arrived",
    ]  # fmt: skip
    for line in text.splitlines():
        if "dup to" in line:  # counted by the peer the packet goes to, at any level
            assert re.search(r"counter name forwarded_(lb1|lb2) drop$", line), line
    assert "forwarded_lb3" not in text  # never its own


def test_ipv4_only_plan_has_no_ip6_table_and_drops_a_stale_one() -> None:
    plan = plan_for(load_topology(TOPOLOGY), "lb2", alive=frozenset({"lb1", "lb2", "lb3"}))
    text = ruleset(plan)
    assert plan.families() == (4,)
    assert "delete table ip6 anycast_chance" in text and "table ip6 anycast_chance {\n" not in text
    assert all(d.address6 is None for d in overlay_devices(plan))


def test_dual_stack_overlay_devices_carry_an_ipv6_address_per_level() -> None:
    plan = plan_for(
        load_topology(DUAL_STACK), "lb3", alive=frozenset({"lb1", "lb2", "lb3"}), hop_limit=2
    )
    assert [(d.address, d.address6) for d in overlay_devices(plan)] == [
        ("169.254.101.3/24", "fd00:ac5c:1::3/64"),
        ("169.254.102.3/24", "fd00:ac5c:2::3/64"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hop_limit": 4}, "hop_limit"),
        ({"chain": ("lb9",)}, "fallback node lb9"),
        ({"underlay": "fd00::1"}, "underlay address"),
        ({"vips": (("192.0.2.10", 0),)}, "VIP port"),
        ({"mtu": 9001}, "overlay mtu"),
        ({"entries": (ForwardEntry(("198.18.1.1", 1, "192.0.2.10", 443), "lb9"),)}, "live peer"),
        ({"entries": (ForwardEntry(("2001:db8::1", 1, "192.0.2.10", 443), "lb1"),)}, "mixes"),
        ({"vips": (("not-an-address", 443),)}, "VIP 'not-an-address'"),
    ],
)
def test_plan_refuses(change: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "node": "lb2",
        "index": 1,
        "underlay": "10.0.0.6",
        "peers": (Peer("lb1", 0, "10.0.0.2"),),
        "vips": (("192.0.2.10", 443),),
        "entries": (),
        "chain": ("lb1",),
        "hop_limit": 1,
    }
    with pytest.raises(ValueError, match=message):
        ChancePlan(**{**fields, **change})  # type: ignore[arg-type]
