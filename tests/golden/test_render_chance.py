"""Golden files for the second-chance ruleset of an LB node (render/chance.py).

Input: topologies/default.yaml, lb1 withdrawn, eight fixed flows. Regenerate with
UPDATE_GOLDEN=1 after an intended change, and read the diff: it is what nft will load.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.chance import ChancePlan, Peer, overlay_devices, plan_for, removal, ruleset
from anycast_ctl.sim.fabric import Event, Fabric
from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.flows import FlowBatch, generate
from anycast_ctl.sim.owners import ForwardEntry, forward_entries, owner_candidates, owner_change

HERE = Path(__file__).parent / "chance"
TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
FLOWS = [(f"198.18.1.{10 + i}", 40000 + 7 * i) for i in range(8)]


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
    assert removal() == "table ip anycast_chance {}\ndelete table ip anycast_chance\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hop_limit": 4}, "hop_limit"),
        ({"chain": ("lb9",)}, "fallback node lb9"),
        ({"underlay": "fd00::1"}, "underlay address"),
        ({"vips": (("192.0.2.10", 0),)}, "VIP port"),
        ({"mtu": 9001}, "overlay mtu"),
        ({"entries": (ForwardEntry(("198.18.1.1", 1, "192.0.2.10", 443), "lb9"),)}, "live peer"),
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
