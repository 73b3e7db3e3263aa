"""Previous owners of flows after an event, and the fallback chain (pure, tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.sim.fabric import Event, Fabric
from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.flows import FlowBatch, generate
from anycast_ctl.sim.linux import LinuxHashSettings, select_nexthop_scalar
from anycast_ctl.sim.network import NO_PATH
from anycast_ctl.sim.owners import (
    ForwardEntry,
    OwnerChange,
    candidate_coverage,
    fallback_chain,
    forward_entries,
    owner_candidates,
    owner_change,
    unpredictable,
)

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


@pytest.fixture(scope="module")
def default_change() -> OwnerChange:
    topo = load_topology(TOPOLOGIES / "default.yaml")
    (batch,) = list(generate(topo, 200_000, seed=1))
    return owner_change(Fabric.from_topology(topo), Event("withdraw", "lb1"), batch)


def test_withdrawing_lb1_moves_what_the_simulator_reports(default_change: OwnerChange) -> None:
    # docs/simulator.md (200,000 flows, seed 1): 50.0 % moved, 33.3 % own, 16.8 % collateral.
    n = len(default_change.batch)
    lb1 = frozenset({"lb1"})
    assert round(100 * default_change.moved.sum() / n, 1) == 50.0
    assert round(100 * default_change.own(lb1).sum() / n, 1) == 33.3
    assert round(100 * default_change.collateral(lb1).sum() / n, 1) == 16.8
    assert (default_change.after != 0).all()  # nothing lands on the withdrawn node


def test_every_moved_flow_is_one_forward_entry_on_its_new_node(
    default_change: OwnerChange,
) -> None:
    lb2, lb3 = forward_entries(default_change, "lb2"), forward_entries(default_change, "lb3")
    assert len(lb2) + len(lb3) == int(default_change.moved.sum())
    assert forward_entries(default_change, "lb1") == []
    # Hash-threshold: lb2's range grows over lb1's; lb3's grows over the top sixth of lb2's
    # (the collateral), so lb3 forwards to lb2 and lb2 to lb1, never the other way.
    assert {e.owner for e in lb2} == {"lb1"}
    assert {e.owner for e in lb3} == {"lb2"}


def test_previous_owner_is_the_kernel_choice_before_the_event() -> None:
    # Scalar reference (sim/linux.py), flow by flow: r1's next hops in file order, seed 0x5eed.
    topo = load_topology(TOPOLOGIES / "default.yaml")
    settings = LinuxHashSettings(policy=3, fields=0x37, seed=0x5EED)
    flows = [(f"198.18.1.{1 + i % 200}", 40000 + i) for i in range(300)]
    part = FlowArrays.from_tuples([(s, "192.0.2.10", 6, p, 443) for s, p in flows])
    batch = FlowBatch(part, np.zeros(300, np.int64), np.zeros(300, np.int64), np.ones(300))
    change = owner_change(Fabric.from_topology(topo), Event("withdraw", "lb2"), batch)
    for i, (src, port) in enumerate(flows):
        flow = (src, "192.0.2.10", 6, port, 443)
        assert change.before[i] == select_nexthop_scalar(flow, [1, 1, 1], settings)
        after = select_nexthop_scalar(flow, [1, 1], settings)
        assert change.after[i] == (0, 2)[after]
    entry = next(e for e in forward_entries(change, "lb3") if e.owner == "lb2")
    assert isinstance(entry, ForwardEntry) and entry.flow[2:] == ("192.0.2.10", 443)


def test_a_flow_without_a_path_is_never_moved() -> None:
    batch = FlowBatch(
        FlowArrays.from_tuples([("198.18.1.1", "192.0.2.10", 6, 1, 443)] * 3),
        np.zeros(3, np.int64),
        np.zeros(3, np.int64),
        np.ones(3),
    )
    change = OwnerChange(
        ("lb1", "lb2"), np.array([NO_PATH, 0, 1]), np.array([1, NO_PATH, 0]), batch
    )
    assert change.moved.tolist() == [False, False, True]


@pytest.mark.parametrize(
    ("node", "alive", "limit", "chain"),
    [
        ("lb1", {"lb1", "lb2", "lb3"}, 2, ("lb2", "lb3")),
        ("lb2", {"lb1", "lb2", "lb3"}, 2, ("lb3", "lb1")),
        ("lb3", {"lb1", "lb2", "lb3"}, 1, ("lb1",)),
        ("lb1", {"lb1", "lb3"}, 3, ("lb3",)),  # a node that is down is never asked
        ("lb1", {"lb1"}, 2, ()),
    ],
)
def test_fallback_chain(node: str, alive: set[str], limit: int, chain: tuple[str, ...]) -> None:
    assert fallback_chain(node, ("lb1", "lb2", "lb3"), frozenset(alive), limit) == chain


@pytest.mark.parametrize(
    ("node", "limit", "message"), [("lb1", 0, "hop_limit"), ("lb9", 1, "not one of")]
)
def test_fallback_chain_refuses(node: str, limit: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fallback_chain(node, ("lb1", "lb2"), frozenset({"lb1", "lb2"}), limit)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("algorithm: linux", "algorithm: rendezvous"), "algorithm rendezvous"),
        (("policy: 3", "policy: 1"), "policy 1"),
    ],
)
def test_unpredictable_names_each_router_and_why(
    tmp_path: Path, change: tuple[str, str], words: str
) -> None:
    assert unpredictable(load_topology(TOPOLOGIES / "default.yaml")) == []
    path = tmp_path / "t.yaml"
    path.write_text((TOPOLOGIES / "default.yaml").read_text().replace(*change, 1))
    (reason,) = unpredictable(load_topology(path))
    assert reason.startswith("router r1: ") and words in reason


def test_owner_candidates_are_the_ranges_each_node_took_over(
    default_change: OwnerChange,
) -> None:
    # lb1 of 3 withdrawn: lb2's new half covers lb1's old third (and its own); lb3's covers
    # the top of lb2's old third (and its own). One candidate each: one hop reaches the owner.
    assert owner_candidates(default_change, "lb2") == ("lb1",)
    assert owner_candidates(default_change, "lb3") == ("lb2",)
    assert owner_candidates(default_change, "lb1") == ()


def test_fallback_chain_puts_likely_owners_first_and_skips_the_dead() -> None:
    lbs, alive = ("lb1", "lb2", "lb3", "lb4"), frozenset({"lb1", "lb2", "lb4"})
    assert fallback_chain("lb2", lbs, alive, 3, likely=("lb4", "lb3", "lb2")) == ("lb4", "lb1")
    assert fallback_chain("lb1", lbs, alive, 1, likely=("lb4",)) == ("lb4",)


@pytest.mark.parametrize(
    ("topology", "event"),
    [
        ("default.yaml", Event("withdraw", "lb1")),
        ("default.yaml", Event("withdraw", "lb2")),
        ("default.yaml", Event("add", "lb4")),
        ("leaf-spine.yaml", Event("withdraw", "lb1")),
        ("leaf-spine.yaml", Event("withdraw", "lb5")),
        ("hybrid.yaml", Event("withdraw", "lb1")),
    ],
)
def test_one_event_gives_every_node_one_previous_owner(topology: str, event: Event) -> None:
    # Hash-threshold after one LB node leaves or joins: each node's gained flows all come
    # from one node, so its first likely owner, one hop, keeps every moved connection.
    topo = load_topology(TOPOLOGIES / topology)
    (batch, *_) = list(generate(topo, 50_000, seed=1))
    change = owner_change(Fabric.from_topology(topo), event, batch)
    assert change.moved.mean() > 0.25
    assert all(len(owner_candidates(change, lb)) <= 1 for lb in change.lbs)
    assert candidate_coverage(change) == 1.0


def test_candidate_coverage_counts_only_the_first_hops() -> None:
    batch = FlowBatch(
        FlowArrays.from_tuples([("198.18.1.1", "192.0.2.10", 6, p, 443) for p in (1, 2, 3, 4)]),
        np.zeros(4, np.int64),
        np.zeros(4, np.int64),
        np.ones(4),
    )
    # lb3 gains two flows from lb1 and one from lb2; one flow stays on lb2.
    change = OwnerChange(
        ("lb1", "lb2", "lb3"), np.array([0, 0, 1, 1]), np.array([2, 2, 2, 1]), batch
    )
    assert owner_candidates(change, "lb3") == ("lb1", "lb2")
    assert candidate_coverage(change, 1) == pytest.approx(2 / 3)
    assert candidate_coverage(change, 2) == 1.0
