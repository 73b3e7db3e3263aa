"""The podman deployer's reading of a containerlab file (pure): what containerlab would
create, in its order; anything it does not understand is refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from anycast_ctl.config.topology import load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab.containers.spec import Bind, Link, deploy_spec, expand
from anycast_ctl.lab.experiments.container_traffic import route_gateways
from anycast_ctl.render.containerlab import clab_file_name, containerlab_files

REPO = Path(__file__).resolve().parents[2]


def _rendered() -> dict:
    topo = load_topology(REPO / "topologies" / "default.yaml")
    return yaml.safe_load(containerlab_files(topo)[clab_file_name(topo)])


def test_the_rendered_default_lab_becomes_nodes_links_and_exec_lines_in_order() -> None:
    spec = deploy_spec(_rendered(), Path("/labs/default"), {}, "default.clab.yml")
    assert spec.lab == "default"
    assert [n.name for n in spec.nodes] == ["r1", "lb1", "lb2", "lb3", "be1", "be2", "c1"]
    r1 = spec.nodes[0]
    assert r1.image == "anycast-ctl-router:latest"
    assert r1.cmd == ("anycast-ctl-supervise", "/etc/anycast-ctl/programs.json")
    assert Bind(Path("/labs/default/r1"), "/etc/anycast-ctl", True) in r1.binds
    assert ("net.ipv4.fib_multipath_hash_seed", "24301") in r1.sysctls
    assert r1.exec_lines[0] == ("ip", "link", "set", "dev", "eth-lb1", "mtu", "1550")
    assert ("ip", "addr", "add", "100.64.255.1/32", "dev", "lo") in r1.exec_lines
    assert r1.exec_lines[-1] == ("anycast-ctl-supervise", "start")
    assert r1.restart_policy == "no"
    be1 = next(n for n in spec.nodes if n.name == "be1")
    assert Bind(Path("/labs/default/pki"), "/var/lib/anycast-ctl/pki", False) in be1.binds
    assert spec.links[0] == Link("c1", "eth-r1", "r1", "eth-c1")


def test_image_variables_expand_as_containerlab_does() -> None:
    assert expand("${IMG:=a:1}", {}) == "a:1"
    assert expand("${IMG:=a:1}", {"IMG": ""}) == "a:1"
    assert expand("${IMG:=a:1}", {"IMG": "b:2"}) == "b:2"
    spec = deploy_spec(_rendered(), Path("/x"), {"ANYCAST_LB_IMAGE": "mine:3"}, "f")
    assert {n.image for n in spec.nodes if n.name.startswith("lb")} == {"mine:3"}


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["topology"]["nodes"]["r1"].update({"ports": ["80:80"]}), "nodes.r1.ports"),
        (lambda d: d["topology"]["nodes"]["r1"].update({"network-mode": "host"}), "network-mode"),
        (lambda d: d["topology"]["nodes"]["r1"].update({"binds": ["a:b:c:d"]}), "binds[0]"),
        (lambda d: d["topology"]["nodes"]["r1"].update({"kind": "srl"}), "topology.nodes.r1"),
        (lambda d: d["topology"]["links"].append({"endpoints": ["zz:e1", "r1:e9"]}), "links[10]"),
        (lambda d: d.pop("name"), "name"),
    ],
)
def test_what_the_deployer_cannot_do_like_containerlab_is_refused(change, where: str) -> None:
    doc = _rendered()
    change(doc)
    with pytest.raises(UserError) as err:
        deploy_spec(doc, Path("/x"), {}, "lab.clab.yml")
    (line,) = err.value.lines()
    assert line.startswith("lab.clab.yml: ") and where in line


def test_route_gateways_in_the_kernels_order() -> None:
    multipath = (
        '[{"dst":"192.0.2.10","protocol":"bgp","metric":20,"flags":[],"nexthops":['
        '{"gateway":"100.64.0.5","dev":"eth-lb2","weight":1,"flags":[]},'
        '{"gateway":"100.64.0.3","dev":"eth-lb1","weight":1,"flags":[]}]}]'
    )
    assert route_gateways(multipath) == ["100.64.0.5", "100.64.0.3"]
    single = '[{"dst":"192.0.2.10","gateway":"100.64.0.7","dev":"eth-lb3","protocol":"bgp"}]'
    assert route_gateways(single) == ["100.64.0.7"]
    assert route_gateways("[]") == [] and route_gateways("") == []
