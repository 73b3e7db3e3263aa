"""The agent's second-chance decisions: heartbeats, peer states, the plan, likely owners."""

from __future__ import annotations

from pathlib import Path

from anycast_ctl.agent import lifeline
from anycast_ctl.chance.likely import Likely
from anycast_ctl.chance.peers import PeerTable, decode, encode
from anycast_ctl.chance.planner import announced_set, plan
from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.chance import device, removal
from anycast_ctl.render.node_config import node_config
from anycast_ctl.sim.owners import HOP_LIMIT_MAX

KEY = "0123456789abcdef-key"
TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"


def test_a_signed_beat_round_trips_and_a_forged_or_stale_one_does_not() -> None:
    data = encode("lb1", "live", 1000.0, KEY)
    beat = decode(data, KEY, 1000.5, 5.0)
    assert beat is not None and (beat.node, beat.state) == ("lb1", "live")
    assert decode(data, "another-key-of-16-bytes", 1000.5, 5.0) is None
    assert decode(data.replace(b"live", b"gone"), KEY, 1000.5, 5.0) is None
    assert decode(data, KEY, 1010.0, 5.0) is None  # older than the skew allows
    assert decode(encode("lb1", "live", 1000.0, None), KEY, 1000.0, 5.0) is None  # unsigned
    assert decode(b"garbage", None, 0.0, 5.0) is None


def test_peers_are_live_drained_or_down_and_never_step_back() -> None:
    table = PeerTable({"lb1": "10.0.0.1", "lb3": "10.0.0.3"}, dead_after=0.6)
    assert table.states(0.0) == {"lb1": "down", "lb3": "down"}
    beat = decode(encode("lb1", "live", 100.0, None), None, 100.0, 5.0)
    assert beat is not None
    assert not table.hear(beat, "10.0.0.3", 1.0)  # lb1's beat from lb3's address
    assert table.hear(beat, "10.0.0.1", 1.0)
    assert not table.hear(beat, "10.0.0.1", 1.1)  # a replay
    drained = decode(encode("lb3", "drained", 100.0, None), None, 100.0, 5.0)
    assert drained is not None and table.hear(drained, "10.0.0.3", 1.0)
    assert table.states(1.5) == {"lb1": "live", "lb3": "drained"}
    assert table.states(1.7) == {"lb1": "down", "lb3": "down"}  # silent for 0.7 s
    gone = decode(encode("lb1", "gone", 101.0, None), None, 101.0, 5.0)
    assert gone is not None and table.hear(gone, "10.0.0.1", 2.0)
    assert table.states(2.0)["lb1"] == "down"


def test_the_plan_targets_serving_peers_only_and_the_likely_owner_first() -> None:
    topo = load_topology(TOPOLOGY)
    cfg = node_config(topo, "lb2", run_dir=Path("/run/x")).second_chance
    states = {"lb1": "drained", "lb3": "live"}
    assert announced_set("lb2", True, states) == {"lb2", "lb3"}
    likely = Likely(topo)
    history = (frozenset({"lb1", "lb2", "lb3"}), frozenset({"lb2", "lb3"}))
    assert likely.owners(history, "lb2") == ("lb1",)  # lb2 gains lb1's flows alone
    assert likely.owners(history, "lb3") == ("lb2",)
    p = plan(cfg, "lb2", states, likely.owners(history, "lb2"))
    assert {x.name for x in p.peers} == {"lb1", "lb3"} and p.chain == ("lb1",)
    down = plan(cfg, "lb2", {"lb1": "down", "lb3": "live"}, ("lb1",))
    assert {x.name for x in down.peers} == {"lb3"} and "lb1" not in down.chain
    assert plan(cfg, "lb2", {"lb1": "down", "lb3": "down"}).chain == ()


def test_the_guardian_removes_what_the_renderer_names() -> None:
    assert removal() == lifeline.CHANCE_REMOVAL
    assert tuple(device(k) for k in range(1, HOP_LIMIT_MAX + 1)) == lifeline.CHANCE_DEVICES


def test_likely_owners_of_a_dual_stack_topology_are_predicted() -> None:
    dual = Path(__file__).resolve().parents[1] / "golden" / "chance" / "dual-stack.yaml"
    likely = Likely(load_topology(dual))
    every = frozenset({"lb1", "lb2", "lb3"})
    # lb1 drained: lb2 takes lb1's range, lb3 a part of lb2's (hash-threshold, 3 -> 2).
    assert likely.owners((every, every - {"lb1"}), "lb2") == ("lb1",)
    assert likely.owners((every, every - {"lb1"}), "lb3") == ("lb2",)
