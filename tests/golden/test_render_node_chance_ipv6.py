"""`render node` for a dual-stack topology: the second_chance section carries the IPv6 VIP and
the peers' IPv6 overlay addresses, and the agent's plan from that section builds the same ip6
table as the topology's own plan (tests/golden/chance/dual-stack.yaml; UPDATE_GOLDEN=1)."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import pytest
import yaml

from anycast_ctl.chance.planner import plan
from anycast_ctl.config.node import NodeConfig
from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.chance import overlay_address, overlay_devices, plan_for, ruleset
from anycast_ctl.render.node_chance import chance_section
from anycast_ctl.render.node_config import node_config, node_config_yaml

HERE = Path(__file__).parent / "chance"
DUAL_STACK = HERE / "dual-stack.yaml"
DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
TOPOLOGY_COPY = PurePath("/etc/anycast-ctl/topology.yaml")
LBS = ("lb1", "lb2", "lb3")


def check_golden(name: str, text: str) -> None:
    golden = HERE / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no {golden}; run with UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text(), f"{name} differs from its golden file (UPDATE_GOLDEN=1)"


def config(node: str, topology: Path = DUAL_STACK) -> NodeConfig:
    topo = load_topology(topology)
    return node_config(topo, node, run_dir=Path("/run/x"), topology_file=TOPOLOGY_COPY)


def test_the_section_lists_both_families_and_the_peers_ipv6_overlay() -> None:
    topo = load_topology(DUAL_STACK)
    section = chance_section(topo, "lb2", topo.address_plan(), TOPOLOGY_COPY)
    assert section is not None
    check_golden("lb2-dual-stack.second-chance.yaml", yaml.safe_dump(section, sort_keys=False))
    assert section["vips"] == [
        {"address": "192.0.2.10", "port": 443},
        {"address": "2001:db8:f::10", "port": 443},
    ]
    for peer in section["peers"]:  # type: ignore[attr-defined]
        assert peer["overlay6"] == overlay_address(1, peer["index"], 6)


def test_an_ipv4_only_node_has_no_ipv6_overlay_in_its_peers() -> None:
    cfg = config("lb2", DEFAULT).second_chance
    assert all(v.address.count(".") == 3 for v in cfg.vips)
    assert all(p.overlay6 is None for p in cfg.peers)


@pytest.mark.parametrize("node", LBS)
def test_the_agents_plan_from_the_section_is_the_topologys_own(node: str) -> None:
    cfg = config(node).second_chance
    states = {p.name: "live" for p in cfg.peers}
    likely = ("lb1",) if node != "lb1" else ("lb2",)
    mine = plan(cfg, node, states, likely)
    theirs = plan_for(
        load_topology(DUAL_STACK), node, alive=frozenset(LBS), likely=likely, hop_limit=1
    )
    assert mine.families() == (4, 6)
    assert ruleset(mine) == ruleset(theirs)
    assert overlay_devices(mine)[0].address6 == f"{overlay_address(1, mine.index, 6)}/64"


def test_the_agents_ip6_table_golden() -> None:
    cfg = config("lb2").second_chance
    text = ruleset(plan(cfg, "lb2", {"lb1": "live", "lb3": "drained"}, ("lb1",)))
    check_golden("lb2-dual-stack-agent.nft", text)
    ip6 = text[text.index("table ip6 anycast_chance {\n") :]
    assert "2001:db8:f::10 . 443" in ip6 and "dup to fd00:ac5c:1::1" in ip6


def test_the_rendered_node_yaml_loads_back_with_its_ipv6_vip(tmp_path: Path) -> None:
    from anycast_ctl.config.node import load_node_config

    cfg = config("lb3")
    path = tmp_path / "node.yaml"
    path.write_text(node_config_yaml(cfg))
    loaded = load_node_config(path).second_chance
    assert [(v.address, v.port) for v in loaded.vips][-1] == ("2001:db8:f::10", 443)
    assert loaded == cfg.second_chance
