"""The containerlab rendering: its topology file matches the address plan and its configs are
exactly the ones the other renderers produce (so containerlab and namespace labs agree)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import yaml

from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.containerlab import (
    CONF_DIR,
    RUN_DIR,
    STATE_DIR,
    clab_file_name,
    containerlab_files,
    image_for,
    main,
    render_containerlab,
)
from anycast_ctl.render.exabgp import agent_argv, render_exabgp
from anycast_ctl.render.frr import render_frr
from anycast_ctl.render.haproxy import haproxy_configs
from anycast_ctl.render.hostnet import addresses
from anycast_ctl.render.node_config import node_config_yaml, node_configs
from anycast_ctl.render.plan import router_plans

TOPOLOGIES = sorted((Path(__file__).resolve().parents[2] / "topologies").glob("*.yaml"))


@pytest.fixture(params=TOPOLOGIES, ids=lambda p: p.stem)
def topo(request):
    return load_topology(request.param)


def test_every_node_and_link_of_the_plan_is_in_the_clab_file(topo) -> None:
    files = containerlab_files(topo)
    clab = yaml.safe_load(files[clab_file_name(topo)])
    plan = topo.address_plan()
    assert clab["name"] == topo.name
    assert list(clab["topology"]["nodes"]) == list(plan.nodes)
    endpoints = [tuple(link["endpoints"]) for link in clab["topology"]["links"]]
    assert endpoints == [
        (f"{k.a}:{plan.interface(k.a, k.b).name}", f"{k.b}:{plan.interface(k.b, k.a).name}")
        for k in topo.links
    ]
    for name, spec in clab["topology"]["nodes"].items():
        assert spec["kind"] == "linux"
        assert image_for(topo.kind(name)).variable in spec["image"]
        for device, cidr in addresses(plan, name):
            assert any(cidr in cmd and f"dev {device}" in cmd for cmd in spec["exec"]), (name, cidr)


def test_binds_point_at_rendered_files(topo) -> None:
    files = containerlab_files(topo)
    nodes = yaml.safe_load(files[clab_file_name(topo)])["topology"]["nodes"]
    for name, spec in nodes.items():
        for bind in spec.get("binds", []):
            host = bind.split(":")[0]
            assert host in files or any(f.startswith(host + "/") for f in files), bind
        if topo.kind(name) == "lb":
            assert spec["exec"][-1] == f"sh {CONF_DIR}/start.sh"


def test_configs_are_the_other_renderers_output_with_container_paths(topo) -> None:
    files = containerlab_files(topo)
    for router, plan in router_plans(topo).items():
        assert files[f"{router}/frr.conf"] == render_frr(plan)
    run_dir, state_dir = Path(str(RUN_DIR)), Path(str(STATE_DIR))
    for lb, cfg in node_configs(topo, run_dir=run_dir, state_dir=state_dir).items():
        assert cfg.drain.state_file == state_dir / lb / "drain.json"  # not under /run
        assert files[f"{lb}/node.yaml"] == node_config_yaml(cfg, topology_name=topo.name)
        assert files[f"{lb}/haproxy.cfg"] == haproxy_configs(topo, run_dir=run_dir)[lb]
        conf = CONF_DIR / "node.yaml"
        exabgp = render_exabgp(cfg, conf, agent_argv(["anycast-ctl"], conf))
        assert (files[f"{lb}/exabgp.conf"], files[f"{lb}/exabgp.env"]) == (
            exabgp["exabgp.conf"],
            exabgp["exabgp.env"],
        )
        for name in ("haproxy.cfg", "exabgp.env", "exabgp.conf"):
            assert f"{CONF_DIR}/{name}" in files[f"{lb}/start.sh"]


def test_exec_lines_are_single_commands_without_shell_syntax(topo) -> None:
    nodes = yaml.safe_load(containerlab_files(topo)[clab_file_name(topo)])["topology"]["nodes"]
    for spec in nodes.values():
        for cmd in spec["exec"]:
            assert not set(cmd) & set(";|&><$`"), cmd
            assert shlex.split(cmd)[0] in ("ip", "sysctl", "sh"), cmd


def test_rendering_twice_gives_the_same_bytes(topo) -> None:
    assert containerlab_files(topo) == containerlab_files(topo.model_copy())


def test_render_containerlab_writes_every_file_under_the_topology_name(tmp_path: Path) -> None:
    topo = load_topology(TOPOLOGIES[0])
    written = render_containerlab(topo, tmp_path)
    assert sorted(written) == sorted(tmp_path / topo.name / rel for rel in containerlab_files(topo))
    for path in written:
        assert os.access(path, os.X_OK) == path.name.endswith(".sh")


def test_module_entrypoint_reports_a_bad_topology_and_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: [edge]\nrouters: []\n")
    assert main([str(bad), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: ")
    assert not (tmp_path / "out").exists()
