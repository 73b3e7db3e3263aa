"""Golden files for the per-LB agent config (node.yaml) and haproxy.cfg rendered from topologies.

UPDATE_GOLDEN=1 regenerates tests/golden/render/. The consistency tests check that the agent,
HAProxy and the routers' rendered frr.conf agree on every shipped topology; when haproxy is
installed, `haproxy -c` checks every rendered haproxy.cfg.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from anycast_ctl.config.node import HaproxyCheck, ListeningCheck, load_node_config
from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.frr import render_frr
from anycast_ctl.render.haproxy import haproxy_configs
from anycast_ctl.render.node_config import node_config_yaml, node_configs
from anycast_ctl.render.plan import router_plans

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "render"
GOLDEN_TOPOLOGIES = ("default", "two-routers", "edge")
RUN_DIR = Path("/run/anycast-ctl")


def _rendered(topology_name: str) -> dict[str, str]:
    """Golden file name -> rendered text, for every LB of one topology."""
    topo = load_topology(REPO / "topologies" / f"{topology_name}.yaml")
    out = {}
    for lb, cfg in node_configs(topo, run_dir=RUN_DIR).items():
        out[f"{topology_name}/{lb}.node.yaml"] = node_config_yaml(cfg, topology_name=topo.name)
    for lb, text in haproxy_configs(topo, run_dir=RUN_DIR).items():
        out[f"{topology_name}/{lb}.haproxy.cfg"] = text
    return out


CASES = {name: text for topo in GOLDEN_TOPOLOGIES for name, text in _rendered(topo).items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_matches_golden_file(case: str) -> None:
    path = GOLDEN / case
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CASES[case])
    assert CASES[case] == path.read_text(), f"{path} differs; UPDATE_GOLDEN=1 to accept on purpose"


def test_every_golden_file_has_a_case() -> None:
    on_disk = sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file())
    assert on_disk == sorted(CASES)


# ------------------------------------------------------------------ every shipped topology
@pytest.fixture(params=TOPOLOGIES, ids=lambda p: p.stem)
def topo(request):
    return load_topology(request.param)


def test_node_yaml_round_trips_through_the_loader(topo, tmp_path: Path) -> None:
    for profile in ("recommended", "conservative"):
        for lb, cfg in node_configs(topo, run_dir=tmp_path / "run", profile=profile).items():
            path = tmp_path / f"{lb}-{profile}.yaml"
            path.write_text(node_config_yaml(cfg))
            assert load_node_config(path) == cfg, f"{lb} ({profile})"


def _directives(config: str) -> list[str]:
    return [
        line.strip()
        for line in config.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_haproxy_passes_tls_through_without_keys_and_every_server_gets_proxy_v2(topo) -> None:
    for lb, text in haproxy_configs(topo, run_dir=RUN_DIR).items():
        lines = _directives(text)
        binds = [line for line in lines if line.startswith("bind ")]
        assert binds, lb
        for line in lines:
            assert not re.search(r"\b(ssl|crt|crt-list|ca-file|check-ssl)\b", line), f"{lb}: {line}"
        servers = [line for line in lines if line.startswith("server ")]
        assert servers and all(
            line.endswith(" send-proxy-v2 proxy-v2-options unique-id") for line in servers
        ), lb
        assert f"unique-id-format {lb}-%{{+X}}o%pid-%Ts-%rt" in lines
        assert any(line.startswith("log-format ") and line.endswith('id=%ID"') for line in lines)
        assert "mode tcp" in lines and "daemon" not in lines


def _first_group(pattern: str, text: str, flags: int = 0) -> str:
    match = re.search(pattern, text, flags)
    assert match is not None, pattern
    return match.group(1)


def _prefix_list_accepts(frr_conf: str, neighbor: str) -> set[str]:
    """Prefixes permitted, by exact match, on what `neighbor` announces to this router."""
    route_map = _first_group(
        rf"^\s+neighbor {re.escape(neighbor)} route-map (\S+) in$", frr_conf, re.M
    )
    block = _first_group(
        rf"^route-map {re.escape(route_map)} permit 10\n(.*?)^exit$", frr_conf, re.M | re.S
    )
    prefix_list = _first_group(r"match ipv?6? ?address prefix-list (\S+)", block)
    permits = re.findall(
        rf"^ipv?6? ?prefix-list {re.escape(prefix_list)} seq \d+"
        r" permit (\S+)(?: ge (\d+) le (\d+))?$",
        frr_conf,
        re.M,
    )
    accepted = set()
    for prefix, ge, le in permits:
        if not ge:
            accepted.add(prefix)
            continue
        assert ge == le, prefix  # host routes only: exactly one prefix length
        net = ipaddress.ip_network(prefix)
        accepted |= {str(sub) for sub in net.subnets(new_prefix=int(ge))}
    return accepted


def test_agent_vips_equal_what_every_router_accepts_equal_the_topology(topo) -> None:
    plan = topo.address_plan()
    configs = node_configs(topo, run_dir=RUN_DIR)
    frr = {name: render_frr(p) for name, p in router_plans(topo).items()}
    for lb in topo.lbs:
        expected = {vip.address for vip in topo.vips if lb.name in topo.announcers(vip.name)}
        agent = {vip.address for vip in configs[lb.name].vips} if lb.name in configs else set()
        assert agent == expected, lb.name
        for router in (n for n in topo.neighbors(lb.name) if topo.kind(n) == "router"):
            lb_if = plan.interface(lb.name, router)
            accepted = _prefix_list_accepts(frr[router], str(lb_if.ipv4.ip))
            if lb_if.ipv6 is not None and any(":" in p for p in expected):
                accepted |= _prefix_list_accepts(frr[router], str(lb_if.ipv6.ip))
            assert accepted == expected, f"{router} from {lb.name}"


def test_agent_sessions_mirror_the_routers_sessions(topo) -> None:
    """Each agent neighbor is a router's LB neighbor seen from the other end, and vice versa."""
    plans = router_plans(topo)
    owner = {
        str(ip.ip): node.name
        for node in topo.address_plan().nodes.values()
        for i in node.interfaces
        for ip in (i.ipv4, i.ipv6)
        if ip is not None
    }
    for lb, cfg in node_configs(topo, run_dir=RUN_DIR).items():
        from_agent = set()
        for n in cfg.bgp.neighbors:
            router = plans[owner[n.address]]
            (mirror,) = [x for x in router.neighbors if x.address == n.local_address]
            assert (router.asn, router.hold) == (n.peer_as, n.hold_time), f"{lb} -> {router.name}"
            assert (mirror.remote_as, mirror.password, mirror.is_lb) == (
                cfg.bgp.local_as,
                n.md5_password,
                True,
            )
            # GTSM on both ends of every router-LB session, one hop
            assert mirror.ttl_security_hops == n.ttl_security_hops == 1, f"{lb} -> {router.name}"
            from_agent.add((router.name, n.local_address))
        from_routers = {
            (r, x.address) for r, p in plans.items() for x in p.neighbors if owner[x.address] == lb
        }
        assert from_agent == from_routers, lb


def test_agent_checks_name_what_haproxy_defines(topo) -> None:
    configs = node_configs(topo, run_dir=RUN_DIR)
    for lb, text in haproxy_configs(topo, run_dir=RUN_DIR).items():
        proxies = set(re.findall(r"^(?:frontend|backend) (\S+)$", text, re.M))
        (socket,) = re.findall(r"^\s*stats socket (\S+) ", text, re.M)
        binds = set(re.findall(r"^\s*bind (\S+) ", text, re.M))
        for name, check in configs[lb].checks.items():
            if isinstance(check, HaproxyCheck):
                assert {check.frontend, check.backend} <= proxies and str(check.socket) == socket, (
                    name
                )
            else:
                assert isinstance(check, ListeningCheck), name  # the only other kind rendered
                host = f"[{check.host}]" if ":" in check.host else check.host
                assert f"{host}:{check.port}" in binds, name


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_haproxy_accepts_every_rendered_config(topo, tmp_path: Path) -> None:
    for lb, text in haproxy_configs(topo, run_dir=tmp_path).items():
        path = tmp_path / f"{lb}.cfg"
        path.write_text(text)
        done = subprocess.run(
            ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{lb}:\n{done.stdout}{done.stderr}"
