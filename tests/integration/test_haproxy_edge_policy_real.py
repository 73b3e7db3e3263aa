"""The rendered edge policy enforced by a real HAProxy 2.6, on the loopback.

The topology puts every address it can in 127.0.0.0/8 (clients, and the address pool, so the
backends' loopbacks are local here). VIPs may not be loopback addresses, so the rendered
config's two VIP addresses are moved onto the loopback in its text, and the exporter's port
off 8405 so that concurrent runs cannot collide; every rule runs as rendered. `transparent`
binds need CAP_NET_ADMIN: root only. Backends are plain TCP listeners that answer their
name once they receive bytes (the LB passes the ClientHello through untouched, so no TLS
server is needed to tell which backend a name was routed to); the ClientHellos are real
ones, produced by Python's ssl module with the server name under test.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from anycast_ctl.config.loading import validate
from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.net.host_ports import free_port
from anycast_ctl.render.haproxy import PROMETHEUS_PORT, render_haproxy

MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = [
    pytest.mark.skipif(not os.access(HAPROXY, os.X_OK), reason=f"{HAPROXY} not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="transparent binds need CAP_NET_ADMIN"),
]
ADMITTED, OUTSIDE = "127.0.1.", "127.0.2."
WEB, SHOP = "127.0.10.10", "127.0.10.12"  # where the VIPs below listen in this test
ON_LOOPBACK = {"192.0.2.10": WEB, "192.0.2.12": SHOP}
RATE = 5


def topology(web_port: int, shop_port: int, backend_ports: dict[str, int]) -> Topology:
    data = {
        "name": "edge-loopback",
        "tiers": ["edge"],
        "addressing": {"ipv4": "127.64.0.0/16"},
        "routers": [{"name": "r1", "asn": 65000, "tier": "edge"}],
        "lbs": [{"name": "lb1", "asn": 65101, "vips": ["web", "shop"]}],
        "backends": [{"name": n, "port": p} for n, p in backend_ports.items()],
        "clients": [
            {"name": "c1", "prefixes": [f"{ADMITTED}0/24"]},
            {"name": "c2", "prefixes": [f"{OUTSIDE}0/24"]},
        ],
        "vips": [
            {
                "name": "web",
                "address": "192.0.2.10",
                "port": web_port,
                "backends": ["be1"],
                "allow_sources": [f"{ADMITTED}0/24"],
                "rate_limit": {"new_connections_per_second_per_source": RATE},
            },
            {
                "name": "shop",
                "address": "192.0.2.12",
                "port": shop_port,
                "backends": ["be1", "be2"],
                "sni_routes": [
                    {"server_name": "api.shop.test", "backends": ["be1"]},
                    {"server_name": "www.shop.test", "backends": ["be2"]},
                ],
            },
        ],
        "links": [
            {"a": "c1", "b": "r1"},
            {"a": "c2", "b": "r1"},
            {"a": "r1", "b": "lb1"},
            {"a": "lb1", "b": "be1"},
            {"a": "lb1", "b": "be2"},
        ],
    }
    return validate(Topology, data, "<test topology>")


class NameServer:
    """Accepts on (host, port); answers `name` to whoever sends bytes, then closes."""

    def __init__(self, name: str, host: str, port: int):
        self.name = name.encode()
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    if conn.recv(65536):
                        conn.sendall(self.name)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


def client_hello(server_name: str) -> bytes:
    ctx = ssl.create_default_context()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def exchange(src: str, dst: str, port: int, payload: bytes) -> str:
    """What the client gets back: a backend's name, or 'refused' (closed or reset, no data)."""
    with socket.socket() as sock:
        sock.bind((src, 0))
        sock.settimeout(3)
        try:
            sock.connect((dst, port))
            sock.sendall(payload)
            answer = sock.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            return "refused"
    return answer.decode() or "refused"


def counters(port: int, frontend: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("haproxy_frontend_") and f'proxy="{frontend}"' in line:
            name, value = line.rsplit(" ", 1)
            out[name.split("{")[0].removeprefix("haproxy_frontend_")] = float(value)
    return out


@pytest.fixture
def edge(tmp_path: Path):
    ports = {"be1": free_port(), "be2": free_port()}
    topo = topology(free_port(), free_port(), ports)
    plan = topo.address_plan()
    servers = [NameServer(n, str(plan.nodes[n].loopback_v4.ip), p) for n, p in ports.items()]
    exporter = free_port()
    text = render_haproxy(topo, "lb1", run_dir=tmp_path / "run", plan=plan)
    bind = f"bind 127.0.0.1:{PROMETHEUS_PORT}\n"
    assert bind in text
    (tmp_path / "run" / "lb1").mkdir(parents=True)
    config = tmp_path / "haproxy.cfg"
    text = text.replace(bind, f"bind 127.0.0.1:{exporter}\n")
    for vip, local in ON_LOOPBACK.items():
        assert f"bind {vip}:" in text
        text = text.replace(vip, local)
    config.write_text(text)
    log = (tmp_path / "haproxy.log").open("w")
    env = {**os.environ, "ANYCAST_CTL_LAB": f"acx-edge{os.getpid()}"}
    haproxy = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        deadline = time.monotonic() + 10
        while True:  # bounded: until the exporter answers
            try:
                counters(exporter, "vip-web")
                break
            except OSError:
                assert haproxy.poll() is None, (tmp_path / "haproxy.log").read_text()
                assert time.monotonic() < deadline, "HAProxy's exporter never answered"
                time.sleep(0.05)
        yield topo, exporter
    finally:
        haproxy.kill()  # by its pid
        haproxy.wait(timeout=5)
        log.close()
        for server in servers:
            server.close()


def test_only_allowed_sources_reach_a_backend_and_refusals_are_counted(edge) -> None:
    topo, exporter = edge
    port = topo.vip("web").port
    assert exchange(f"{ADMITTED}5", WEB, port, b"hello") == "be1"
    assert exchange(f"{OUTSIDE}5", WEB, port, b"hello") == "refused"
    seen = counters(exporter, "vip-web")
    assert seen["denied_connections_total"] == 1
    assert seen["denied_sessions_total"] == 0


def test_beyond_the_rate_a_source_is_refused_while_another_is_not(edge) -> None:
    topo, exporter = edge
    port = topo.vip("web").port
    results = [exchange(f"{ADMITTED}6", WEB, port, b"x") for _ in range(3 * RATE)]
    assert results[:RATE] == ["be1"] * RATE  # well inside one second on loopback
    assert "refused" in results[RATE:]
    assert exchange(f"{ADMITTED}7", WEB, port, b"x") == "be1"
    seen = counters(exporter, "vip-web")
    assert seen["denied_sessions_total"] == results.count("refused")
    assert seen["denied_connections_total"] == 0


def test_sni_routes_by_name_and_refuses_other_names_and_non_tls(edge) -> None:
    topo, exporter = edge
    port = topo.vip("shop").port
    src = f"{ADMITTED}8"
    assert exchange(src, SHOP, port, client_hello("api.shop.test")) == "be1"
    assert exchange(src, SHOP, port, client_hello("www.shop.test")) == "be2"
    assert exchange(src, SHOP, port, client_hello("admin.shop.test")) == "refused"
    assert exchange(src, SHOP, port, b"GET / HTTP/1.0\r\n\r\n") == "refused"
    assert counters(exporter, "vip-shop")["requests_denied_total"] == 2


def test_the_agents_probe_from_the_vip_itself_is_neither_refused_nor_counted(edge) -> None:
    topo, exporter = edge
    for vip, frontend in ((topo.vip("web"), "vip-web"), (topo.vip("shop"), "vip-shop")):
        address = ON_LOOPBACK[str(vip.ip)]
        for _ in range(3 * RATE):  # faster than the rate, like the agent's 100 ms probes
            # from the VIP itself, as the agent's probe on an LB node is
            with socket.create_connection((address, vip.port), 2, (address, 0)):
                pass
        seen = counters(exporter, frontend)
        denied = ("denied_connections_total", "denied_sessions_total", "requests_denied_total")
        assert {k: seen[k] for k in denied} == dict.fromkeys(denied, 0), frontend


def test_the_exporter_serves_every_haproxy_metric_the_alerts_and_dashboard_use(edge) -> None:
    _, exporter = edge
    with urllib.request.urlopen(f"http://127.0.0.1:{exporter}/metrics", timeout=5) as answer:
        served = set(re.findall(r"^(haproxy_[a-z_]+)[{ ]", answer.read().decode(), re.M))
    text = (MONITORING / "alerts.yml").read_text() + (
        MONITORING / "grafana-dashboard.json"
    ).read_text()
    used = set(re.findall(r"\b(haproxy_[a-z_]+)\b", text))
    assert used and used <= served, used - served
