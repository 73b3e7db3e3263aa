"""Lab CA and certificates; what a converged router looks like (pure)."""

from __future__ import annotations

import datetime as dt
import ssl

from cryptography import x509

from anycast_ctl.config.topology import load_topology
from anycast_ctl.lab.nodes.files import write_certificates
from anycast_ctl.lab.observe.expect import (
    RouterView,
    expected_nexthops,
    router_problems,
    session_peers,
)
from anycast_ctl.render.node_files import agent_api, backend_names, topology_files

TWO = load_topology("topologies/two-routers.yaml")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_each_backend_is_named_for_every_vip_it_serves():
    assert backend_names(TWO) == {
        "be1": ["web.anycast.test"],
        "be2": ["api.anycast.test", "web.anycast.test"],
    }


def test_backend_certificates_chain_to_the_lab_ca(tmp_path):
    rendered = topology_files(
        TWO, run_dir=tmp_path, conf_dir=lambda node: tmp_path / node, api=agent_api(["x"])
    )
    write_certificates(tmp_path, rendered, "t", NOW)
    ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca.pem").read_bytes())
    request = rendered.certificates["be2"]
    cert_path, key_path = tmp_path / request.cert, tmp_path / request.key
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == [
        "api.anycast.test",
        "web.anycast.test",
    ]
    assert key_path.stat().st_mode & 0o077 == 0
    assert not (tmp_path / "pki" / "ca.key").exists()  # the CA key never reaches the disk
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)  # the pair matches


def _converged_view(router: str) -> RouterView:
    return RouterView(
        router=router,
        sessions={name: "Established" for name in session_peers(TWO)[router].values()},
        fib={"web": ["lb1", "lb2", "lb3", "lb4"], "api": ["lb4", "lb3"]},
    )


def test_expected_nexthops_follow_the_announcements():
    assert expected_nexthops(TWO, "r1", "api") == {"lb3", "lb4"}
    assert expected_nexthops(TWO, "r2", "web") == {"lb1", "lb2", "lb3", "lb4"}


def test_converged_router_has_no_problems_whatever_the_kernel_order():
    assert router_problems(TWO, _converged_view("r1")) == []


def test_router_problems_name_the_session_and_the_route():
    view = _converged_view("r2")
    view.sessions["lb2"] = "Active"
    view.fib["api"] = ["lb3"]
    problems = router_problems(TWO, view)
    assert problems == [
        "r2: session to lb2 is Active",
        "r2: api (192.0.2.20/32) via lb3; expected lb3, lb4",
    ]


def test_a_withdrawn_lb_is_expected_absent():
    view = _converged_view("r1")
    view.sessions["lb4"] = "Active"
    view.fib = {"web": ["lb1", "lb2", "lb3"], "api": ["lb3"]}
    assert router_problems(TWO, view, down_lbs=frozenset({"lb4"})) == []
    assert router_problems(TWO, _converged_view("r1"), down_lbs=frozenset({"lb4"})) != []


def test_a_convergence_error_names_the_first_few_problems_and_counts_them_all():
    from anycast_ctl.lab.observe.expect import summary

    problems = [f"r1: vip{i} (10.0.0.{i}/32) via nothing; expected lb1" for i in range(3000)]
    line = summary(problems)
    assert line.startswith("r1: vip0 (10.0.0.0/32) via nothing; expected lb1; r1: vip1 ")
    assert line.endswith("; and 2995 more (3000 problems)")
    assert "vip5 " not in line
    assert summary(problems[:2]) == "; ".join(problems[:2])


def test_a_router_that_still_sees_bfd_up_from_a_stopped_bfdd_has_not_converged():
    # The router resets that BGP session once it notices the silence: not a state to measure in.
    view = _converged_view("r1")
    view.bfd = {"lb1": "Up", "lb2": "Down"}
    problems = router_problems(TWO, view, bfd_stopped_lbs=frozenset({"lb1", "lb2"}))
    assert problems == ["r1: BFD to lb1 is still Up though its bfdd is stopped"]
    assert router_problems(TWO, view, bfd_lbs=frozenset({"lb1"})) == []
