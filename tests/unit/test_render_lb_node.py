"""Agent config and haproxy.cfg from small inline topologies: IPv6, an LB with no VIPs, bad args."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from anycast_ctl.config.loading import validate
from anycast_ctl.config.topology import Topology
from anycast_ctl.errors import UserError
from anycast_ctl.render.haproxy import haproxy_configs, render_haproxy
from anycast_ctl.render.lb_layout import CHECK_PROFILES, MAX_SOCKET_PATH
from anycast_ctl.render.node_config import node_configs

RUN = Path("/run/t")


def topology(**over) -> Topology:
    data = {
        "tiers": ["edge"],
        "bgp": {"md5_password": "pw"},
        "routers": [{"name": "r1", "asn": 65000, "tier": "edge"}],
        "lbs": [
            {"name": "lb1", "asn": 65101, "vips": ["web", "web6"]},
            {"name": "lb2", "asn": 65102, "vips": []},
        ],
        "backends": [{"name": "be1", "port": 8443}],
        "clients": [{"name": "c1", "prefixes": ["198.18.1.0/24", "2001:db8:1::/64"]}],
        "vips": [
            {"name": "web", "address": "192.0.2.10", "backends": ["be1"]},
            {"name": "web6", "address": "2001:db8:f::10", "port": 8443, "backends": ["be1"]},
        ],
        "links": [
            {"a": "c1", "b": "r1"},
            {"a": "r1", "b": "lb1"},
            {"a": "r1", "b": "lb2"},
            {"a": "lb1", "b": "be1"},
        ],
    }
    data.update(over)
    return validate(Topology, data, "<test>")


def test_ipv6_vip_gets_an_ipv6_session_and_a_bracketed_bind() -> None:
    topo = topology()
    cfg = node_configs(topo, run_dir=RUN)["lb1"]
    plan = topo.address_plan()
    router, lb = plan.interface("r1", "lb1"), plan.interface("lb1", "r1")
    assert router.ipv6 is not None and lb.ipv6 is not None
    assert [(n.address, n.local_address) for n in cfg.bgp.neighbors] == [
        (str(router.ipv4.ip), str(lb.ipv4.ip)),
        (str(router.ipv6.ip), str(lb.ipv6.ip)),
    ]
    text = render_haproxy(topo, "lb1", run_dir=RUN)
    assert "bind [2001:db8:f::10]:8443 transparent" in text
    assert f"server be1 {plan.nodes['be1'].loopback_v4.ip}:8443 check" in text


def test_an_lb_without_vips_runs_neither_agent_nor_haproxy() -> None:
    topo = topology()
    assert (
        sorted(node_configs(topo, run_dir=RUN))
        == sorted(haproxy_configs(topo, run_dir=RUN))
        == ["lb1"]
    )


def test_the_profile_sets_agent_timing_and_haproxy_check_pace() -> None:
    topo = topology()
    for name, profile in CHECK_PROFILES.items():
        cfg = node_configs(topo, run_dir=RUN, profile=name)["lb1"]
        assert cfg.timing == profile.agent
        assert f"inter {profile.haproxy_inter_ms}ms " in render_haproxy(
            topo, "lb1", run_dir=RUN, profile=name
        )


def test_unknown_profile_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown profile 'fast'"):
        node_configs(topology(), run_dir=RUN, profile="fast")


def test_a_run_dir_too_long_for_a_unix_socket_is_a_user_error() -> None:
    deep = Path("/") / ("d" * MAX_SOCKET_PATH)
    with pytest.raises(UserError, match="unix socket path"):
        render_haproxy(topology(), "lb1", run_dir=deep)


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_haproxy_accepts_the_dual_stack_config(tmp_path: Path) -> None:
    path = tmp_path / "lb1.cfg"
    path.write_text(render_haproxy(topology(), "lb1", run_dir=tmp_path))
    done = subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
