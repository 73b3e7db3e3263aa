"""The node config's `certificates:` section and TLS checks, rendered from the topology's
`certificates` settings: every node's slot, the thresholds, the checks the LB can run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from anycast_ctl.agent.checks.cert_policy import judge, withdraw_threshold
from anycast_ctl.agent.preflight import check_node_config
from anycast_ctl.config.node import TlsCheck
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.render.node_config import (
    certificate_slots,
    node_config,
    node_config_yaml,
    node_configs,
)

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
RUN = Path("/run/x")


def with_certificates(name: str, section: str, tmp_path: Path) -> Topology:
    path = tmp_path / f"{name}.yaml"
    path.write_text((TOPOLOGIES / f"{name}.yaml").read_text() + "certificates:\n" + section)
    return load_topology(path)


def test_every_node_of_a_shared_vip_gets_its_own_slot():
    assert certificate_slots(load_topology(TOPOLOGIES / "default.yaml")) == {
        "lb1": (0, 3),
        "lb2": (1, 3),
        "lb3": (2, 3),
    }
    # web on lb1..lb4, api on lb3 and lb4: api's last node is in the last slot too
    assert certificate_slots(load_topology(TOPOLOGIES / "two-routers.yaml")) == {
        "lb1": (0, 4),
        "lb2": (1, 4),
        "lb3": (2, 4),
        "lb4": (3, 4),
    }


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.yaml")), ids=lambda p: p.stem)
@pytest.mark.parametrize("days_left", [0.01, 1.0, 2.9, 5.9])
def test_no_vip_loses_every_node_before_its_certificate_expires(path: Path, days_left: float):
    # Thresholds as aggressive as the model allows: withdraw_days == warn_days.
    topo = load_topology(path).model_copy(
        update={
            "certificates": load_topology(path).certificates.model_copy(
                update={"warn_days": 6, "withdraw_days": 6}
            )
        }
    )
    configs = node_configs(topo, run_dir=RUN)
    for vip in topo.vips:
        nodes = [lb.name for lb in topo.lbs if vip.name in lb.vips]
        staying = [
            n for n in nodes if judge(days_left, n, configs[n].certificates).value != "withdraw"
        ]
        assert staying, f"{path.stem}: {vip.name} withdrawn everywhere at {days_left} days"


def test_a_subset_announcing_a_vip_still_ends_in_the_last_slot():
    # b on lb1 and lb2 only: numbered 0, 1 of 3 in topology order, both would leave early and
    # take b off every node; aligned, lb2 holds the last slot (and lb3 for a).
    lbs = [
        SimpleNamespace(name="lb1", vips=["a", "b"]),
        SimpleNamespace(name="lb2", vips=["a", "b"]),
        SimpleNamespace(name="lb3", vips=["a"]),
    ]
    slots = certificate_slots(SimpleNamespace(lbs=lbs))
    assert slots == {"lb1": (1, 3), "lb2": (2, 3), "lb3": (2, 3)}


def test_thresholds_come_from_the_topology_and_default_without_it(tmp_path: Path):
    plain = node_config(load_topology(TOPOLOGIES / "edge.yaml"), "lb1", run_dir=RUN)
    assert plain.certificates.model_dump() == {
        "warn_days": 30,
        "withdraw_days": 0,
        "slot": 0,
        "slots": 2,
    }
    assert not any(isinstance(c, TlsCheck) for c in plain.checks.values())
    topo = with_certificates("edge", "  warn_days: 1\n  withdraw_days: 0.5\n", tmp_path)
    lb2 = node_config(topo, "lb2", run_dir=RUN).certificates
    assert (lb2.warn_days, lb2.withdraw_days, lb2.slot, lb2.slots) == (1, 0.5, 1, 2)
    assert withdraw_threshold("lb1", node_config(topo, "lb1", run_dir=RUN).certificates) == 0.5
    assert withdraw_threshold("lb2", lb2) == 0  # the last slot never leaves early


def test_tls_checks_only_where_the_lb_can_check_the_certificate(tmp_path: Path):
    topo = with_certificates(
        "edge", "  tls_checks: true\n  ca_file: /etc/anycast-ctl/ca.pem\n", tmp_path
    )
    config = node_config(topo, "lb1", run_dir=RUN)
    tls = {n: c for n, c in config.checks.items() if isinstance(c, TlsCheck)}
    # web only: mtls needs a client key the LB does not hold, shop is routed by name
    assert list(tls) == ["web-tls"]
    check = tls["web-tls"]
    assert (check.host, check.port, check.server_name) == ("192.0.2.10", 443, "web.anycast.test")
    assert check.ca_file == Path("/etc/anycast-ctl/ca.pem")
    web = next(v for v in config.vips if v.address == "192.0.2.10/32")
    assert web.checks == ["web-haproxy", "web-tcp", "web-tls"]
    # the lab's CA, where the lab puts it, overrides the topology's
    lab = node_config(topo, "lb1", run_dir=RUN, ca_file=Path("/run/lab/pki/ca.pem"))
    assert lab.checks["web-tls"].ca_file == Path("/run/lab/pki/ca.pem")  # type: ignore[union-attr]


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_check_accepts_every_rendered_node_config(path: Path, tmp_path: Path):
    for lb, config in node_configs(load_topology(path), run_dir=RUN).items():
        out = tmp_path / f"{lb}.yaml"
        out.write_text(node_config_yaml(config))
        assert check_node_config(out) == config
        assert "certificates:\n  warn_days:" in out.read_text()


def test_config_check_refuses_a_tls_check_whose_ca_file_is_missing(tmp_path: Path):
    topo = with_certificates("edge", "  tls_checks: true\n", tmp_path)
    config = node_config(topo, "lb1", run_dir=RUN, ca_file=tmp_path / "absent.pem")
    out = tmp_path / "lb1.yaml"
    out.write_text(node_config_yaml(config))
    with pytest.raises(UserError, match=r"checks\.web-tls\.ca_file"):
        check_node_config(out)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("  warn_days: 1\n  withdraw_days: 2\n", "certificates"),
        ("  ca_file: relative/ca.pem\n", "certificates.ca_file"),
        ("  warn_days: -1\n", "certificates.warn_days"),
    ],
)
def test_bad_certificate_settings_name_the_field(section: str, field: str, tmp_path: Path):
    with pytest.raises(UserError) as caught:
        with_certificates("edge", section, tmp_path)
    assert any(p.where.startswith(field) for p in caught.value.problems), caught.value.problems
