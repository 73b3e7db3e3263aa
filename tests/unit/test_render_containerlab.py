"""The containerlab rendering: its topology file matches the address plan and its configs are
exactly the ones the other renderers produce (so containerlab and namespace labs agree)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
import yaml

from anycast_ctl.config.topology import load_topology
from anycast_ctl.render import containerlab_nodes as cn
from anycast_ctl.render.bfdd import render_bfdd
from anycast_ctl.render.containerlab import (
    CONF_DIR,
    PKI_DIR,
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
from anycast_ctl.render.hostnet import addresses, lb_sysctls, router_sysctls
from anycast_ctl.render.lb_layout import AS_ROOT
from anycast_ctl.render.node_config import node_config_yaml, node_configs
from anycast_ctl.render.node_files import daemon_configs
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
        for bind in spec["binds"]:
            host = bind.split(":")[0]
            assert host in files or any(f.startswith(host + "/") for f in files), bind
        assert f"{name}:{CONF_DIR}:ro" in spec["binds"]  # programs.json and the node's configs
        writable = [b for b in spec["binds"] if not b.endswith(":ro")]
        # Only backends write (the lab's certificates); nobody writes its own configs.
        assert writable == ([f"pki:{PKI_DIR}"] if topo.kind(name) == "backend" else []), name
        if topo.kind(name) == "client":
            assert f"pki:{PKI_DIR}:ro" in spec["binds"]


def test_configs_are_the_other_renderers_output_with_container_paths(topo) -> None:
    files = containerlab_files(topo)
    for router, plan in router_plans(topo).items():
        assert files[f"{router}/frr.conf"] == render_frr(plan)
        for daemon, text in daemon_configs(render_frr(plan)).items():
            assert files[f"{router}/{daemon}.conf"] == text
            programs = json.loads(files[f"{router}/programs.json"])["programs"]
            argv = next(p["argv"] for p in programs if p["name"] == daemon)
            assert argv[argv.index("-f") + 1] == f"{CONF_DIR}/{daemon}.conf"
    run_dir, state_dir = Path(str(RUN_DIR)), Path(str(STATE_DIR))
    chance_topology = CONF_DIR / "topology.yaml"
    rendered = node_configs(
        topo, run_dir=run_dir, state_dir=state_dir, topology_file=chance_topology
    )
    for lb, cfg in rendered.items():
        assert cfg.drain.state_file == state_dir / lb / "drain.json"  # not under /run
        assert files[f"{lb}/node.yaml"] == node_config_yaml(cfg, topology_name=topo.name)
        # containers run as root: no service user in the images
        assert (
            files[f"{lb}/haproxy.cfg"] == haproxy_configs(topo, run_dir=run_dir, run_as=AS_ROOT)[lb]
        )
        conf = CONF_DIR / "node.yaml"
        exabgp = render_exabgp(cfg, conf, agent_argv(["anycast-ctl"], conf), AS_ROOT)
        assert (files[f"{lb}/exabgp.conf"], files[f"{lb}/exabgp.env"]) == (
            exabgp["exabgp.conf"],
            exabgp["exabgp.env"],
        )
        programs = json.loads(files[f"{lb}/programs.json"])["programs"]
        argvs = " ".join(" ".join(p["argv"]) for p in programs)
        for name in ("haproxy.cfg", "exabgp.env", "exabgp.conf"):
            assert f"{CONF_DIR}/{name}" in argvs
        assert [p["name"] for p in programs] == ["haproxy", "bfdd", "exabgp"]
        assert files[f"{lb}/bfdd.conf"] == render_bfdd(cfg)


def test_exec_lines_are_single_commands_without_shell_syntax(topo) -> None:
    nodes = yaml.safe_load(containerlab_files(topo)[clab_file_name(topo)])["topology"]["nodes"]
    for spec in nodes.values():
        for cmd in spec["exec"]:
            assert not set(cmd) & set(";|&><$`"), cmd
            assert shlex.split(cmd)[0] in ("ip", "sh", "mkdir", cn.SUPERVISE), cmd


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


def test_every_container_is_supervised_unmanaged_and_not_restarted(topo) -> None:
    nodes = yaml.safe_load(containerlab_files(topo)[clab_file_name(topo)])["topology"]["nodes"]
    for name, spec in nodes.items():
        assert spec["network-mode"] == "none", name  # no management default route
        assert spec["restart-policy"] == "no", name  # a restarted container loses its links
        assert spec["cmd"] == f"{cn.SUPERVISE} {CONF_DIR}/programs.json"
        starts = [cmd for cmd in spec["exec"] if cmd == cn.START]
        assert starts == ([] if topo.kind(name) == "client" else [spec["exec"][-1]]), name


def test_router_sysctls_are_in_the_sysctls_key_not_exec(topo) -> None:
    nodes = yaml.safe_load(containerlab_files(topo)[clab_file_name(topo)])["topology"]["nodes"]
    for name, spec in nodes.items():
        assert not any(cmd.startswith("sysctl") for cmd in spec["exec"]), name
        if topo.kind(name) == "router":
            assert spec["sysctls"] == router_sysctls(topo, name)
            assert "net.ipv4.fib_multipath_hash_seed" in spec["sysctls"]
        elif topo.kind(name) == "lb":
            assert spec["sysctls"] == lb_sysctls(topo)
        else:
            assert "sysctls" not in spec


def test_backends_issue_their_certificates_then_serve_them(topo) -> None:
    files = containerlab_files(topo)
    nodes = yaml.safe_load(files[clab_file_name(topo)])["topology"]["nodes"]
    plan = topo.address_plan()
    for backend in topo.backends:
        spec = nodes[backend.name]
        assert spec["exec"][-2:] == [f"sh {CONF_DIR}/pki.sh", cn.START]
        (server,) = json.loads(files[f"{backend.name}/programs.json"])["programs"]
        argv = server["argv"]
        assert (
            argv[argv.index("--listen") + 1]
            == f"{plan.nodes[backend.name].loopback_v4.ip}:{backend.port}"
        )
        assert argv[argv.index("--cert") + 1] == f"{PKI_DIR}/{backend.name}.pem"
        # PROXY v2 only from the LB nodes: every LB address, nothing else
        proxies = {argv[i + 1] for i, a in enumerate(argv) if a == "--proxy-from"}
        lb_ips = {str(plan.nodes[lb.name].loopback_v4.ip) for lb in topo.lbs}
        assert lb_ips <= proxies
        script = files[f"{backend.name}/pki.sh"]
        for other in topo.backends:  # any backend may be the one that issues for all
            names = [n for v in topo.vips for n in v.tls_names_of(other.name)]
            sans = ",".join(
                [f"DNS:{n}" for n in sorted(set(names))]
                + [f"IP:{plan.nodes[other.name].loopback_v4.ip}"]
            )
            assert f'issue {other.name} "{sans}"' in script
    assert files["pki/.gitignore"].splitlines()[1:] == ["*", "!.gitignore"]
    assert not any(f.startswith("pki/") and f != "pki/.gitignore" for f in files)


def test_rendering_warns_that_the_hash_seed_needs_linux_6_11(topo, tmp_path: Path, capsys) -> None:
    clab = containerlab_files(topo)[clab_file_name(topo)]
    assert "# warning: " in clab and "Linux 6.11" in clab
    source = next(
        p for p in TOPOLOGIES if p.stem == topo.name or load_topology(p).name == topo.name
    )
    assert main([str(source), str(tmp_path)]) == 0
    assert "warning: " in capsys.readouterr().err
