"""The edge policy of topologies/edge.yaml (and variants) as HAProxy rules, frontend by frontend."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from anycast_ctl.config.loading import validate
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.render.haproxy import render_haproxy
from anycast_ctl.render.lb_layout import proxy_groups

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
RUN = Path("/run/anycast-ctl")


def sections(text: str) -> dict[str, list[str]]:
    """'frontend vip-web' -> its directive lines (comments dropped)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if re.match(r"^(frontend|backend|global|defaults)\b", line):
            current = line.strip()
            out[current] = []
        elif current and line.strip() and not line.lstrip().startswith("#"):
            out[current].append(line.strip())
    return out


def edge() -> dict[str, list[str]]:
    return sections(render_haproxy(load_topology(TOPOLOGIES / "edge.yaml"), "lb1", run_dir=RUN))


def test_a_vip_without_policy_gets_no_rules() -> None:
    for name, lines in sections(
        render_haproxy(load_topology(TOPOLOGIES / "default.yaml"), "lb1", run_dir=RUN)
    ).items():
        assert not [x for x in lines if x.startswith(("tcp-request", "acl", "stick-table"))], name
    assert edge()["frontend vip-mtls"] == [
        "bind 192.0.2.11:443 transparent",
        "default_backend pool-mtls",
    ]


def test_allow_sources_rejects_others_at_connection_time_after_the_local_probe() -> None:
    web = edge()["frontend vip-web"]
    assert "acl allowed_source src 198.18.1.0/24" in web
    assert "acl local_probe src 192.0.2.10 127.0.0.1" in web
    accept = web.index("tcp-request connection accept if local_probe")
    reject = web.index("tcp-request connection reject if !allowed_source")
    track = web.index("tcp-request connection track-sc0 src")
    assert accept < reject < track  # refused sources never fill the stick table


def test_rate_limit_is_a_stick_table_enforced_per_session() -> None:
    web = edge()["frontend vip-web"]
    assert "stick-table type ip size 100k expire 30s store conn_rate(1s),conn_cur" in web
    assert "tcp-request session reject if { sc_conn_rate(0) gt 20 }" in web
    assert "tcp-request session reject if { sc_conn_cur(0) gt 40 }" in web


def test_sni_routes_pick_a_pool_by_name_with_no_default_backend() -> None:
    all_ = edge()
    shop = all_["frontend vip-shop"]
    assert not [x for x in shop if x.startswith("default_backend")]
    assert shop[shop.index("tcp-request content accept if local_probe") + 1 :][:2] == [
        "tcp-request content reject unless { req.ssl_hello_type 1 }",
        "tcp-request content reject unless"
        " { req.ssl_sni -i api.shop.anycast.test www.shop.anycast.test }",
    ]
    assert (
        "use_backend sni-shop-api.shop.anycast.test if { req.ssl_sni -i api.shop.anycast.test }"
        in shop
    )
    assert all_["backend sni-shop-api.shop.anycast.test"] == [
        "balance roundrobin",
        "server be1 100.64.255.4:443 track pool-web/be1 send-proxy-v2 proxy-v2-options unique-id",
    ]
    assert all_["backend sni-shop-www.shop.anycast.test"][-1].startswith("server be2 ")


def _edge_data() -> dict:
    return yaml.safe_load((TOPOLOGIES / "edge.yaml").read_text())


def test_vips_differing_only_in_policy_get_their_own_frontends() -> None:
    data = _edge_data()
    data["vips"].append({"name": "open", "address": "192.0.2.20", "backends": ["be1", "be2"]})
    data["lbs"][0]["vips"].append("open")
    data["vips"].append({**data["vips"][0], "name": "web2", "address": "192.0.2.21"})
    data["lbs"][0]["vips"].append("web2")
    topo = validate(Topology, data, "t.yaml")
    groups = {g.name: [v.name for v in g.vips] for g in proxy_groups(topo, "lb1")}
    assert groups == {"web": ["web", "web2"], "mtls": ["mtls"], "shop": ["shop"], "open": ["open"]}


def test_an_ipv6_vip_gets_an_ipv6_stick_table_and_probe() -> None:
    data = _edge_data()
    data["clients"][0]["prefixes"].append("2001:db8:1::/48")
    data["vips"][0].update(address="2001:db8:f::10", allow_sources=["2001:db8:1::/48"])
    text = render_haproxy(validate(Topology, data, "t.yaml"), "lb1", run_dir=RUN)
    web = sections(text)["frontend vip-web"]
    assert "acl local_probe src 2001:db8:f::10 ::1" in web
    assert any(x.startswith("stick-table type ipv6 ") for x in web)


def test_sni_vips_default_their_tls_name_to_the_first_route() -> None:
    topo = load_topology(TOPOLOGIES / "edge.yaml")
    shop = topo.vip("shop")
    assert shop.tls_name == "api.shop.anycast.test"
    assert shop.tls_names_of("be2") == ["www.shop.anycast.test"]
    assert topo.vip("web").tls_names_of("be1") == ["web.anycast.test"]
