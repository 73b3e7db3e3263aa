"""A node's connections from `ss` output, and the entries they give the other nodes (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.chance.connections import count_by_vip, parse_established, ss_filter_argv
from anycast_ctl.config.topology import load_topology
from anycast_ctl.sim.fabric import Event, Fabric
from anycast_ctl.sim.owners import forward_entries, owned_batch, owner_change

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
VIPS = {("192.0.2.10", 443)}

SS = """\
0      0      192.0.2.10:443     198.18.1.7:40001
0      0      192.0.2.10:443     198.18.1.9:50001   users:(("haproxy",pid=7,fd=12))
ESTAB 0 0     192.0.2.10:443     198.18.1.11:50002
0      0      100.64.0.3:179     100.64.0.2:40000
0      0      192.0.2.10:8443    198.18.1.12:50003
0      0      [::ffff:192.0.2.10]:443 [::ffff:198.18.1.13]:50004
0      0      [2001:db8::10]:443 [2001:db8:1::5]:50005
Recv-Q Send-Q Local Address:Port Peer Address:Port
garbage
"""


def test_parse_established_keeps_connections_to_the_vips_only() -> None:
    assert parse_established(SS, VIPS | {("2001:db8:0::10", 443)}) == [
        ("198.18.1.7", 40001, "192.0.2.10", 443),
        ("198.18.1.9", 50001, "192.0.2.10", 443),
        ("198.18.1.11", 50002, "192.0.2.10", 443),  # with a State column
        ("198.18.1.13", 50004, "192.0.2.10", 443),  # a dual-stack socket's mapped addresses
        ("2001:db8:1::5", 50005, "2001:db8::10", 443),
    ]
    assert parse_established("", VIPS) == []


def test_a_nodes_connections_give_the_entries_of_the_nodes_that_gain_them() -> None:
    topo = load_topology(TOPOLOGY)
    fabric = Fabric.from_topology(topo)
    flows = [(f"198.18.1.{1 + i % 250}", 30000 + i, "192.0.2.10", 443) for i in range(600)]
    every = owner_change(fabric, Event("withdraw", "lb1"), owned_batch(topo, flows))
    lb2_owns = [f for f, before in zip(flows, every.before.tolist(), strict=True) if before == 1]
    # Only lb2's own connections, as lb2 would read them from ss: lb3 gains some of them.
    mine = owner_change(fabric, Event("withdraw", "lb1"), owned_batch(topo, lb2_owns))
    lb3 = forward_entries(mine, "lb3")
    assert lb3 and {e.owner for e in lb3} == {"lb2"}
    assert lb3 == [e for e in forward_entries(every, "lb3") if e.owner == "lb2"]


def test_owned_batch_names_a_flow_that_fits_no_client() -> None:
    with pytest.raises(ValueError, match="flow 0, field src: 203.0.113.1 is in no client"):
        owned_batch(load_topology(TOPOLOGY), [("203.0.113.1", 1, "192.0.2.10", 443)])


def test_count_by_vip_counts_every_port_of_each_vip_and_skips_the_nodes_own() -> None:
    text = SS + "0 0 192.0.2.10:443 192.0.2.10:41000\n0 0 192.0.2.10:41000 192.0.2.10:443\n"
    counts = count_by_vip(text, ["192.0.2.10/32", "2001:db8:0::10/128", "192.0.2.20/32"])
    # 443 x3, the mapped one, 8443; the node's own connection to its VIP (both ends) is not
    assert counts == {"192.0.2.10/32": 5, "2001:db8:0::10/128": 1, "192.0.2.20/32": 0}
    assert count_by_vip("", ["192.0.2.10"]) == {"192.0.2.10": 0}


def test_ss_filter_asks_the_kernel_for_established_sockets_local_to_the_vips_only() -> None:
    argv = ss_filter_argv(["192.0.2.10/32", "2001:DB8:0::10/128", "192.0.2.10", "192.0.2.20"])
    assert argv == (
        "ss", "-Htn", "state", "established",
        "(", "src", "192.0.2.10", "or", "src", "[2001:db8::10]", "or", "src", "192.0.2.20", ")",
    )  # fmt: skip
    assert ss_filter_argv(["2001:db8::10/128"])[-4:] == ("(", "src", "[2001:db8::10]", ")")


def test_ss_filter_without_vips_asks_nothing() -> None:
    assert ss_filter_argv([]) == ()
