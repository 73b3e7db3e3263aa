"""topologies/edge.yaml in the lab (root): the policy of each VIP, enforced end to end.

One lab for every check (bringing it up is the slow part): c1 is inside web's allow_sources,
c2 outside; mtls requires client certificates; shop routes two names to two backends. Every
admitted flow's backend must have seen the client's own address through PROXY v2, the same
connection id must be in the LB's log and the backend's, and nothing on an LB node may hold a
private key.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from anycast_ctl.lab.experiments.traffic import TrafficResult
from anycast_ctl.lab.net.cleanup import cleanup, leftovers
from anycast_ctl.lab.topology_up import Lab

pytestmark = pytest.mark.root
EDGE = Path(__file__).resolve().parents[2] / "topologies" / "edge.yaml"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    # One lab for the module; the tag has conftest's shape (acx-t<pid>-<n>), so a run killed
    # outright is swept by the next one, and a serial no per-test tag reaches.
    tag = f"acx-t{os.getpid()}-900"
    cleanup(tag)
    try:
        yield Lab.up(EDGE, tag=tag, timeout=90)
    finally:
        cleanup(tag)
        assert not leftovers(tag), str(leftovers(tag))


def outcomes(result: TrafficResult) -> Counter[tuple[str, str, str | None]]:
    return Counter((f.client, f.vip, f.reason if not f.ok else "ok") for f in result.flows)


def test_sources_certificates_and_names_as_the_policy_says(lab: Lab) -> None:
    result = lab.traffic(120)
    assert outcomes(result) == Counter(
        {
            ("c1", "web", "ok"): 20,
            ("c2", "web", "refused-by-allow-list"): 20,
            ("c1", "mtls", "ok"): 20,
            ("c2", "mtls", "ok"): 20,
            ("c1", "shop", "ok"): 20,
            ("c2", "shop", "ok"): 20,
        }
    )
    admitted = [f for f in result.flows if f.ok]
    assert all(f.lb == f.predicted for f in admitted)
    # The policy is part of the prediction: c2's refusals by web's allow-list are as predicted,
    # so `lab traffic` exits 0 on this run.
    assert {f.expected for f in result.flows if f.client == "c2" and f.vip == "web"} == {
        "refused-by-allow-list"
    }
    assert result.agreement() == (120, 120), [
        (f.client, f.vip, f.reason) for f in result.mismatches()
    ]
    # PROXY v2: the backend saw the client itself, not the LB that connected to it
    assert [f for f in admitted if f.backend_saw_src != f.src] == []
    routes = {"api.shop.anycast.test": "be1", "www.shop.anycast.test": "be2"}  # edge.yaml
    shop = [f for f in admitted if f.vip == "shop"]
    assert {f.server_name for f in shop} == set(routes)
    assert [f for f in shop if f.backend != routes[str(f.server_name)]] == []  # by name
    assert {f.backend for f in admitted if f.vip == "mtls"} == {"be3"}


def test_without_a_client_certificate_every_flow_to_the_required_vip_fails(lab: Lab) -> None:
    result = lab.traffic(120, first_port=21000, client_cert=False)
    mtls = [f for f in result.flows if f.vip == "mtls"]
    assert len(mtls) == 40
    assert {f.reason for f in mtls} == {"tls-alert"}, {f.error for f in mtls}
    assert all("certificate required" in (f.error or "") for f in mtls)
    assert all(f.expected == "tls-alert" and f.agrees for f in mtls)  # as the policy says
    others = [f for f in result.flows if f.vip != "mtls" and f.client == "c1"]
    assert others and all(f.ok for f in others)  # the other VIPs need none


def test_beyond_its_rate_a_source_is_refused_while_another_source_is_not(lab: Lab) -> None:
    # 600 flows from one address per client, all at once: c1 sends 100 to web (limit 20 new
    # connections per second per source, on each LB) well inside a second.
    burst = lab.traffic(600, first_port=30000, sources=1, concurrency=1024)
    web = [f for f in burst.flows if f.vip == "web" and f.client == "c1"]
    limited = [f for f in web if f.reason == "rate-limited"]
    assert limited and len(limited) < len(web), Counter(f.reason for f in web)
    assert {f.src for f in web} == {"198.18.1.1"}
    # Meanwhile another source of c1's is admitted (its own counters).
    other = lab.traffic(12, first_port=32000, sources=8)
    fresh = [
        f for f in other.flows if f.vip == "web" and f.client == "c1" and f.src != "198.18.1.1"
    ]
    assert fresh and all(f.ok for f in fresh), [(f.src, f.reason) for f in fresh]


def test_one_connection_id_in_the_lb_log_and_the_backend_log(lab: Lab) -> None:
    result = lab.traffic(12, first_port=33000)
    flow = next(f for f in result.flows if f.ok and f.vip == "web")
    assert flow.connection_id and flow.connection_id.startswith(f"{flow.lb}-")
    lb_log = (lab.dir / str(flow.lb) / "haproxy.log").read_text()
    backend_log = (lab.dir / str(flow.backend) / "backend.log").read_text()
    (lb_line,) = [ln for ln in lb_log.splitlines() if f"id={flow.connection_id}" in ln]
    assert lb_line.startswith(f"{flow.src}:{flow.sport} ")
    (be_line,) = [ln for ln in backend_log.splitlines() if f"id={flow.connection_id}" in ln]
    assert f"client={flow.src}:{flow.sport}" in be_line and "conn=ok" in be_line


def test_no_lb_node_holds_a_private_key(lab: Lab) -> None:
    for lb in lab.topology.lbs:
        files = [p for p in (lab.dir / lb.name).rglob("*") if p.is_file() and not p.is_socket()]
        assert files
        for path in files:
            text = path.read_bytes()
            assert b"PRIVATE KEY" not in text, path
            assert not path.name.endswith((".key", ".pem")), path
