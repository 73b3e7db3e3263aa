"""The node config's second_chance section: rendered on by default, validated, refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from anycast_ctl.config.node_chance import Heartbeat, SecondChance
from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.chance import plan_for
from anycast_ctl.render.node_chance import chance_notice, chance_section, topology_yaml
from anycast_ctl.render.node_config import node_config

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
RUN = Path("/run/x")


def test_rendered_on_by_default_with_every_other_node_as_peer() -> None:
    topo = load_topology(TOPOLOGIES / "default.yaml")
    cfg = node_config(topo, "lb2", run_dir=RUN, topology_file=Path("/etc/t.yaml")).second_chance
    assert cfg.enabled and cfg.index == 1 and cfg.hop_limit == 1 and cfg.overlay_mtu == 1500
    assert [p.name for p in cfg.peers] == ["lb1", "lb3"]
    # The same underlay addresses render/chance.plan_for gives the table.
    plan = plan_for(topo, "lb2", alive=frozenset({"lb1", "lb2", "lb3"}))
    assert cfg.underlay == plan.underlay
    assert {(p.name, p.underlay) for p in cfg.peers} == {(p.name, p.underlay) for p in plan.peers}
    assert [p.overlay for p in cfg.peers] == ["169.254.101.1", "169.254.101.3"]
    assert [(v.address, v.port) for v in cfg.vips] == list(plan.vips)
    assert cfg.topology == Path("/etc/t.yaml") and not cfg.unpredictable


def test_the_topology_turns_it_off() -> None:
    topo = load_topology(TOPOLOGIES / "default.yaml")
    off = topo.model_copy(update={"second_chance": topo.second_chance.model_copy(
        update={"enabled": False})})  # fmt: skip
    assert chance_section(off, "lb1", off.address_plan(), None) is None
    assert not node_config(off, "lb1", run_dir=RUN).second_chance.enabled


def test_unpredictable_hashing_is_said_and_no_topology_is_used() -> None:
    topo = load_topology(TOPOLOGIES / "default.yaml")
    hashing = topo.hashing.model_copy(update={"seed": 0})
    topo = topo.model_copy(update={"hashing": hashing})
    for router in topo.routers:
        assert router.hashing is None or "seed" not in router.hashing.model_fields_set
    section = chance_section(topo, "lb1", topo.address_plan(), Path("/etc/t.yaml"))
    assert section is not None and "topology" not in section and section["unpredictable"]
    notice = chance_notice(topo)
    assert notice is not None and "fallback chain" in notice and "seed 0" in notice


def test_the_topology_copy_loads_back_the_same(tmp_path: Path) -> None:
    topo = load_topology(TOPOLOGIES / "hybrid.yaml")
    (tmp_path / "t.yaml").write_text(topology_yaml(topo))
    assert load_topology(tmp_path / "t.yaml").model_dump() == topo.model_dump()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"enabled": True}, "index and underlay"),
        (
            {
                "enabled": True,
                "index": 0,
                "underlay": "10.0.0.1",
                "peers": [{"name": "b", "index": 0, "underlay": "10.0.0.2"}],
            },
            "index 0 is already",
        ),  # fmt: skip
        (
            {
                "enabled": True,
                "index": 0,
                "underlay": "10.0.0.1",
                "peers": [{"name": "b", "index": 1, "underlay": "10.0.0.1"}],
            },
            "underlay 10.0.0.1 is already",
        ),  # fmt: skip
        (
            {
                "enabled": True,
                "index": 0,
                "underlay": "10.0.0.1",
                "peers": [
                    {"name": "b", "index": 1, "underlay": "10.0.0.2", "overlay": "169.254.101.9"}
                ],
            },
            "is not node index 1's",
        ),  # fmt: skip
        ({"index": 0, "underlay": "fd00::1"}, "not an IPv4 address"),
        ({"hop_limit": 4}, "less than or equal to 3"),
    ],
)
def test_bad_sections_are_refused_naming_why(data: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        SecondChance.model_validate(data)


def test_a_peer_is_declared_dead_only_after_several_beats() -> None:
    with pytest.raises(ValidationError, match="at least 3 intervals"):
        Heartbeat(interval=0.5, dead_after=1.0)
    with pytest.raises(ValidationError, match="16-256 bytes"):
        Heartbeat(key="short")


def test_ipv6_vips_and_overlay_addresses_are_taken_normalized() -> None:
    cfg = SecondChance.model_validate(
        {
            "enabled": True,
            "index": 0,
            "underlay": "10.0.0.1",
            "vips": [{"address": "192.0.2.10"}, {"address": "2001:DB8:0::10", "port": 8443}],
            "peers": [
                {"name": "b", "index": 1, "underlay": "10.0.0.2", "overlay6": "FD00:AC5C:1:0::2"}
            ],
        }
    )
    assert [(v.address, v.port) for v in cfg.vips] == [("192.0.2.10", 443), ("2001:db8::10", 8443)]
    assert cfg.peers[0].overlay6 == "fd00:ac5c:1::2"


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("::ffff:192.0.2.10", "cannot be a VIP"),
        ("ff02::1", "cannot be a VIP"),
        ("::", "cannot be a VIP"),
        ("2001:db8::/64", "not an IPv4 or IPv6 address"),
    ],
)
def test_vips_that_no_client_reaches_are_refused(address: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        SecondChance.model_validate({"vips": [{"address": address}]})


def test_the_underlay_stays_ipv4_for_dual_stack_nodes() -> None:
    with pytest.raises(ValidationError, match="not an IPv4 address"):
        SecondChance.model_validate({"peers": [{"name": "b", "index": 1, "underlay": "fd00::2"}]})
