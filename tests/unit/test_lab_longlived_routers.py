"""Pure parts of the long-lived connection counts and of the router scenarios (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.cli import main
from anycast_ctl.config.topology import load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab.experiments.failover_report import (
    Measurement,
    format_table,
    long_lived_cell,
    summarize,
)
from anycast_ctl.lab.experiments.longlived import HeldConnection, broken_counts
from anycast_ctl.lab.experiments.router_acts import (
    DRAIN_MAP,
    drain_lines,
    pick_router,
    redundant_routers,
    upstream_neighbors,
    upstream_sessions,
)
from anycast_ctl.render.hostnet import lb_sysctls, setup_commands
from anycast_ctl.sim.predict import predict_held

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def topo(name: str):
    return load_topology(TOPOLOGIES / f"{name}.yaml")


# ---------------------------------------------------------------- which routers can go
@pytest.mark.parametrize(
    ("name", "expect"),
    [
        ("default", []),
        ("hybrid", ["r1", "r2"]),
        ("leaf-spine", ["s1", "s2"]),  # a leaf is its client's only way in
        ("leaf-spine-per-spine-seeds", ["s1", "s2"]),
    ],
)
def test_redundant_routers(name, expect):
    assert redundant_routers(topo(name)) == expect


def test_upstream_neighbours_are_on_the_clients_side():
    assert upstream_neighbors(topo("hybrid"), "r1") == ["u1"]
    assert upstream_neighbors(topo("hybrid"), "u1") == ["c1", "c2"]
    assert upstream_neighbors(topo("leaf-spine"), "s2") == ["l1", "l2"]


def dual_stack(name: str, tmp_path: Path):
    """The topology with an IPv6 VIP beside the IPv4 one (on the same LB nodes) and an IPv6
    prefix beside each client's IPv4 one."""
    text = (TOPOLOGIES / f"{name}.yaml").read_text()
    for n in (1, 2):
        v4 = f"prefixes: [198.18.{n}.0/24]"
        assert v4 in text
        text = text.replace(v4, f'prefixes: [198.18.{n}.0/24, "2001:db8:c{n}::/64"]')
    text = text.replace("vips: [web]}", "vips: [web, web6]}")
    web = "  - {name: web, address: 192.0.2.10, port: 443, backends: [be1, be2]}\n"
    assert web in text
    text = text.replace(
        web, web + '  - {name: web6, address: "2001:db8:f::10", port: 443, backends: [be1, be2]}\n'
    )
    path = tmp_path / f"{name}6.yaml"
    path.write_text(text)
    return load_topology(path)


def test_a_drain_withdraws_over_both_sessions_of_a_dual_stack_neighbour(tmp_path):
    hybrid6 = dual_stack("hybrid", tmp_path)
    sessions = upstream_sessions(hybrid6, "r1")
    assert sorted(sessions.values()) == ["u1", "u1-v6"]
    lines = drain_lines(hybrid6, "r1")
    drained = [line for line in lines if line.endswith(f"{DRAIN_MAP} out")]
    assert len(drained) == 2
    for addr in sessions:  # each in its own family's block
        family = "ipv6" if ":" in addr else "ipv4"
        line = f"neighbor {addr} route-map {DRAIN_MAP} out"
        block = lines[lines.index(f"address-family {family} unicast") :]
        assert line in block[: block.index("exit-address-family")]


def test_a_drain_of_an_ipv4_only_router_has_no_ipv6_family():
    lines = drain_lines(topo("hybrid"), "r1")
    assert "address-family ipv6 unicast" not in lines
    assert sum(line.endswith(f"{DRAIN_MAP} out") for line in lines) == 1


def test_pick_router_defaults_to_the_first_and_refuses_the_irreplaceable():
    assert pick_router(topo("hybrid"), None) == "r1"
    assert pick_router(topo("hybrid"), "r2") == "r2"
    with pytest.raises(UserError, match=r"'u1' cannot be taken out.*candidates: r1, r2"):
        pick_router(topo("hybrid"), "u1")
    with pytest.raises(UserError, match="topology default has no router"):
        pick_router(topo("default"), None)


def test_router_scenario_on_a_single_router_topology_exits_2_before_root(capsys):
    argv = ["lab", "failover", "--topology", str(TOPOLOGIES / "default.yaml")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--scenarios", "router-kill"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and "--router: topology default has no router" in err


# ---------------------------------------------------------------- broken counts
def held(sport: int, lb: str, opened: float | None = 1.0, broken: float | None = None):
    return HeldConnection("c1", "198.18.1.1", sport, "192.0.2.10", 443, lb, opened, broken, None)


def test_broken_counts_against_the_prediction_of_lb1_leaving():
    t = topo("default")
    before = {"web": {"r1": ["lb1", "lb2", "lb3"]}}
    after = {"web": {"r1": ["lb2", "lb3"]}}
    conns = [held(40000 + i, "?") for i in range(60)]
    lbs = predict_held(t, [c.five_tuple for c in conns], before)
    moves = predict_held(t, [c.five_tuple for c in conns], after)
    conns = [
        HeldConnection(c.client, c.src, c.sport, c.dst, c.dport, lb, 1.0, None, None)
        for c, lb in zip(conns, lbs, strict=True)
    ]
    moved = [i for i in range(60) if lbs[i] != moves[i]]
    collateral = [i for i in moved if lbs[i] != "lb1"]
    assert moved and collateral  # hash-threshold: lb1's flows and some of lb2's move
    # Exactly the predicted ones break (at 5.0, inside the window 2.0 .. 9.0).
    broken = [
        HeldConnection(c.client, c.src, c.sport, c.dst, c.dport, c.lb, 1.0, 5.0, "reset")
        if i in moved
        else c
        for i, c in enumerate(conns)
    ]
    extra = [held(1, "lb2", opened=3.0), held(2, "lb2", broken=1.5), held(3, None, opened=None)]
    counts = broken_counts(t, broken + extra, 2.0, 9.0, "lb1", before, after)
    assert counts.open == 60  # opened after the event, broken before it, never opened: out
    assert counts.broken == counts.predicted == len(moved)
    assert counts.collateral == len(collateral)
    assert counts.mismatch == 0
    late = [
        HeldConnection(c.client, c.src, c.sport, c.dst, c.dport, c.lb, 1.0, 9.5, "reset")
        if c.broken
        else c
        for c in broken
    ]
    counts = broken_counts(t, late, 2.0, 9.0, "lb1", before, after)
    assert counts.broken == 0 and counts.mismatch == len(moved)  # after the window: not counted


def test_with_forwarding_the_prediction_is_the_nodes_own_or_nothing():
    t = topo("default")
    before = {"web": {"r1": ["lb1", "lb2", "lb3"]}}
    after = {"web": {"r1": ["lb2", "lb3"]}}
    conns = [held(40000 + i, ("lb1", "lb2", "lb3")[i % 3]) for i in range(30)]
    own = broken_counts(t, conns, 2.0, 9.0, "lb1", before, after, "own")
    assert own.predicted == 10 and own.broken == 0 and own.mismatch == 10
    none = broken_counts(t, conns, 2.0, 9.0, "lb1", before, after, "none")
    assert none.predicted == none.mismatch == 0
    model = broken_counts(t, conns, 2.0, 9.0, "lb1", before, after)
    assert model.predicted > own.predicted  # lb2's moved ones too


def test_second_chance_defaults_to_on_where_the_hashing_is_predictable():
    from anycast_ctl.lab.experiments.forwarding import forwarding_prediction, second_chance_on
    from anycast_ctl.lab.experiments.scenario_names import Scenario

    t = topo("default")
    assert second_chance_on(t, None) and not second_chance_on(t, False)
    random_seed = t.model_copy(update={"hashing": t.hashing.model_copy(update={"seed": 0})})
    assert not second_chance_on(random_seed, None)
    off = t.model_copy(
        update={"second_chance": t.second_chance.model_copy(update={"enabled": False})}
    )
    assert not second_chance_on(off, None) and second_chance_on(off, True)
    assert forwarding_prediction("lab", Scenario.DRAIN) == "none"
    assert forwarding_prediction("lab", Scenario.HAPROXY_KILL) == "own"
    assert forwarding_prediction("lab", Scenario.ROUTER_KILL) is None
    assert forwarding_prediction(None, Scenario.HAPROXY_KILL) is None


def test_the_agents_own_forwarding_predicts_its_node_lost_unless_it_still_serves():
    from anycast_ctl.lab.experiments.baseline import Implementation
    from anycast_ctl.lab.experiments.forwarding import forwarder, forwarding_prediction
    from anycast_ctl.lab.experiments.scenario_names import Scenario

    t = topo("default")
    assert forwarder(t, None, Implementation.ANYCAST) == "agent"
    assert forwarder(t, True, Implementation.ANYCAST) == "lab"
    assert forwarder(t, False, Implementation.ANYCAST) is None
    baselines = [i for i in Implementation if i is not Implementation.ANYCAST]
    assert baselines and all(forwarder(t, None, i) is None for i in baselines)
    off = t.model_copy(
        update={"second_chance": t.second_chance.model_copy(update={"enabled": False})}
    )
    assert forwarder(off, None, Implementation.ANYCAST) is None
    assert forwarding_prediction("agent", Scenario.DRAIN) == "none"
    # the lab's tables keep forwarding to a node whose agent died; the agent's peers do not
    assert forwarding_prediction("lab", Scenario.AGENT_KILL) == "none"
    assert forwarding_prediction("agent", Scenario.AGENT_KILL) == "own"
    assert forwarding_prediction("agent", Scenario.ROUTER_DRAIN) is None


def test_no_connections_counts_nothing():
    counts = broken_counts(topo("default"), [], 0, 1, "lb1", {}, {})
    assert (counts.open, counts.broken, counts.predicted, counts.mismatch) == (0, 0, 0, 0)


# ---------------------------------------------------------------- report
def test_report_sums_and_shows_long_lived_counts():
    ms = [
        Measurement(
            "anycast",
            "router-kill",
            run,
            "r1",
            long_lived=200,
            long_lived_broken=run,
            long_lived_broken_collateral=run,
            long_lived_predicted_broken=0,
        )
        for run in range(2)
    ] + [Measurement("anycast", "drain", 0, "lb1")]
    rows = {r.scenario: r for r in summarize(ms)}
    assert rows["router-kill"].long_lived == 400 and rows["router-kill"].long_lived_broken == 1
    assert long_lived_cell(rows["router-kill"]) == "1/400 (0; 1)"
    assert long_lived_cell(rows["drain"]) == "-"
    table = format_table(list(rows.values()))
    assert "long-lived broken (predicted; collateral)" in table and "1/400 (0; 1)" in table


def test_measurement_rows_carry_exactly_the_four_long_lived_keys():
    keys = {k for k in Measurement.__dataclass_fields__ if k.startswith("long_lived")}
    assert keys == {
        "long_lived",
        "long_lived_broken",
        "long_lived_broken_collateral",
        "long_lived_predicted_broken",
    }


# ---------------------------------------------------------------- LB nodes skip dead links
def test_lb_nodes_ignore_next_hops_whose_link_is_down():
    t = topo("hybrid")
    assert lb_sysctls(t) == {"net.ipv4.conf.all.ignore_routes_with_linkdown": 1}
    assert "sysctl -w net.ipv4.conf.all.ignore_routes_with_linkdown=1" in setup_commands(t, "lb1")
    assert not any("linkdown" in c for c in setup_commands(t, "r1"))
