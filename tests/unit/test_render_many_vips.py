"""Many VIPs per LB node: shared frontends and pools, server checks that do not multiply,
agent checks that grow with groups, not VIPs; HAProxy loads the result."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from anycast_ctl.config.loading import validate
from anycast_ctl.config.topology import Topology
from anycast_ctl.render.haproxy import render_haproxy
from anycast_ctl.render.lb_layout import proxy_groups
from anycast_ctl.render.node_config import node_config
from anycast_ctl.render.plan import router_plans

RUN = Path("/run/t")


def topology(n_web: int, *, api_backends=("be2",)) -> Topology:
    web: list[dict[str, Any]] = [
        {
            "name": f"w{i}",
            "address": f"10.20.{i // 256}.{i % 256}",
            "backends": ["be1", "be2"],
        }
        for i in range(n_web)
    ]
    other: list[dict[str, Any]] = [
        {"name": "api", "address": "192.0.2.50", "backends": list(api_backends)},
        {"name": "alt", "address": "192.0.2.51", "port": 8443, "backends": ["be1", "be2"]},
        {"name": "web6", "address": "2001:db8:f::10", "backends": ["be1", "be2"]},
    ]
    vips = web + other
    return validate(
        Topology,
        {
            "tiers": ["edge"],
            "bgp": {"md5_password": "pw"},
            "routers": [{"name": "r1", "asn": 65000, "tier": "edge"}],
            "lbs": [
                {
                    "name": "lb1",
                    "asn": 65101,
                    "vips": [v["name"] for v in vips],
                    "maximum_prefix": len(vips) + 10,
                }
            ],
            "backends": [{"name": "be1"}, {"name": "be2"}],
            "clients": [{"name": "c1", "prefixes": ["198.18.1.0/24", "2001:db8:1::/64"]}],
            "vips": vips,
            "links": [
                {"a": "c1", "b": "r1"},
                {"a": "r1", "b": "lb1"},
                {"a": "lb1", "b": "be1"},
                {"a": "lb1", "b": "be2"},
            ],
        },
        "<test>",
    )


def test_vips_sharing_port_family_and_backends_share_one_frontend_and_pool():
    groups = proxy_groups(topology(5), "lb1")
    assert [(g.name, len(g.vips)) for g in groups] == [
        ("w0", 5),
        ("api", 1),  # other backends
        ("alt", 1),  # other port
        ("web6", 1),  # other family
    ]
    text = render_haproxy(topology(5), "lb1", run_dir=RUN)
    assert len(re.findall(r"^frontend vip-", text, re.M)) == 4  # + the exporter's frontend
    frontend = text.split("frontend vip-w0\n")[1].split("\n\n")[0]
    assert [ln.split()[1] for ln in frontend.splitlines() if "bind " in ln] == [
        f"10.20.0.{i}:443" for i in range(5)
    ]


def test_each_backend_server_is_health_checked_by_one_pool_and_tracked_by_the_others():
    text = render_haproxy(topology(5), "lb1", run_dir=RUN)
    # what each server line says about checks, before the PROXY protocol every server gets
    servers = re.findall(r"^    server (\S+) \S+ (.+) send-proxy-v2 .*$", text, re.M)
    assert servers.count(("be1", "check")) == 1 and servers.count(("be2", "check")) == 1
    assert ("be2", "track pool-w0/be2") in servers  # api's pool
    assert servers.count(("be1", "track pool-w0/be1")) == 2  # alt and web6


def test_the_agent_runs_two_checks_per_group_not_per_vip():
    config = node_config(topology(300), "lb1", run_dir=RUN)
    assert len(config.vips) == 303
    assert len(config.checks) == 2 * 4
    web = [v for v in config.vips if v.address.startswith("10.20.")]
    assert {tuple(v.checks) for v in web} == {("w0-haproxy", "w0-tcp")}
    assert config.checks["w0-haproxy"].frontend == "vip-w0"


def test_the_routers_take_a_thousand_vips_in_a_few_prefix_list_lines():
    (plan,) = router_plans(topology(1000)).values()
    (lb,) = [n for n in plan.neighbors if n.name == "lb1"]
    assert len(lb.accept) == 1002 and len(lb.accept_entries) <= 12


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_haproxy_loads_a_thousand_vips_quickly(tmp_path: Path):
    path = tmp_path / "lb1.cfg"
    path.write_text(render_haproxy(topology(1000), "lb1", run_dir=tmp_path))
    done = subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stdout + done.stderr
