"""Issue 14 item 5 in the lab (root): the lab CA's certificates made short-lived prove the
warning end to end. topologies/edge.yaml with TLS checks and thresholds in hours, brought up
with certificates valid for 18 hours: below warn_days (1), above every node's withdraw
threshold (lb1 0.5 days, lb2, the last slot, never early). Each agent must log the warning, its
status must mark the check "warn" with the days left, and web must stay announced by both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.topology_up import Lab

pytestmark = pytest.mark.root
EDGE = Path(__file__).resolve().parents[2] / "topologies" / "edge.yaml"
CERT_DAYS = 0.75
SETTINGS = "certificates:\n  warn_days: 1\n  withdraw_days: 0.5\n  tls_checks: true\n"


def _tls_check(lab: Lab, lb: str) -> dict:
    status = lab.agent_request(lb, {"op": "status"})
    web = next(v for v in status["vips"] if v["address"].startswith("192.0.2.10"))
    return next(c for c in web["checks"] if c["name"] == "web-tls") | {"vip": web}


def test_short_lived_lab_certificates_warn_without_withdrawing(make_lab_tag, tmp_path: Path):
    topology = tmp_path / "edge-certs.yaml"
    topology.write_text(EDGE.read_text() + SETTINGS)
    lab = Lab.up(topology, tag=make_lab_tag(), timeout=90, cert_days=CERT_DAYS)
    for lb in ("lb1", "lb2"):

        def judged(lb: str = lb) -> bool:
            return bool(_tls_check(lab, lb).get("certificate"))

        wait_for(judged, 20, interval=0.2)
        check = _tls_check(lab, lb)
        certificate = check["certificate"]
        assert certificate["level"] == "warn", check
        assert CERT_DAYS - 0.01 < certificate["days_left"] <= CERT_DAYS, certificate
        assert certificate["warn_days"] == 1
        assert certificate["withdraw_days"] == {"lb1": 0.5, "lb2": 0}[lb]
        assert check["health"] == "ok" and "expiring" in check["detail"]
        assert check["vip"]["announced"] is True
        logs = "".join(p.read_text(errors="replace") for p in (lab.dir / lb).glob("*.log"))
        assert "check web-tls: certificate warn" in logs, lb
    # Still announced by both: the warning withdraws nothing.
    assert sorted(lab.fib_nexthops("r1", "web")) == ["lb1", "lb2"]
