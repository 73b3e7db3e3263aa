"""What `status` shows about flap damping and ExaBGP's last line (pure formatting)."""

from __future__ import annotations

import re

from anycast_ctl.agent.damping import Damping
from anycast_ctl.agent.fsm import VipState, VipStatus
from anycast_ctl.agent.status import exabgp_status, reuse_note
from anycast_ctl.cli.status_table import format_status

NOW = 1_700_000_000.0
D = Damping(half_life=10.0)


def payload(damping: dict | None, state: str = "suppressed") -> dict:
    return {
        "node": "lb1",
        "exabgp": exabgp_status(True, 1.5, {}, NOW),
        "vips": [
            {
                "address": "192.0.2.10/32",
                "state": state,
                "since": NOW - 3,
                "announced": False,
                "drain": None,
                "damping": damping,
                "checks": [],
            }
        ],
    }


def test_a_suppressed_vip_shows_when_it_comes_back():
    status = VipStatus(
        VipState.SUPPRESSED, 0, NOW - 3, penalty=1500.0, penalty_at=NOW, suppressed=True
    )
    reuse_at = status.reuse_at(D)
    assert reuse_at == NOW + 10  # 1500 -> 750 is one half-life
    text = format_status(
        payload({"penalty": 1500.0, "suppressed": True, "reuse_at": reuse_at}), NOW
    )
    row = next(line for line in text.splitlines() if line.startswith("192.0.2.10/32"))
    assert re.search(
        r"suppressed .* no\s+SUPPRESSED until \d\d:\d\d:\d\d \(in 10s\), penalty 1500", row
    )


def test_a_penalty_without_suppression_is_shown_and_none_is_a_dash():
    text = format_status(
        payload({"penalty": 812.4, "suppressed": False, "reuse_at": None}, "up"), NOW
    )
    assert "penalty 812" in text
    text = format_status(payload({"penalty": 0, "suppressed": False, "reuse_at": None}, "up"), NOW)
    assert "penalty" not in text


def test_exabgp_last_line_is_an_age_not_a_clock_reading():
    view = exabgp_status(True, 1.5, {"10.0.0.1": True}, NOW)
    assert view["last_line_at"] == NOW - 1.5 and view["last_line_age_s"] == 1.5
    # Even against a CLI whose clock is a day off, the age is what the agent measured.
    line = format_status(payload(None, "up") | {"exabgp": view}, NOW + 86400).splitlines()[0]
    assert "last line 1s ago" in line
    assert exabgp_status(True, None, {}, NOW)["last_line_at"] is None


def test_the_audit_note_names_the_reuse_time():
    assert reuse_note(None) == ""
    assert re.search(r"suppressed until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", reuse_note(NOW))
