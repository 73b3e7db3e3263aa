"""`anycast-ctl lab` commands that need no lab, and the lab tables (pure)."""

from __future__ import annotations

from click.testing import CliRunner

from anycast_ctl.cli import cli
from anycast_ctl.cli.lab_format import cleanup_text, status_text, traffic_text
from anycast_ctl.lab.experiments.traffic import FlowResult, TrafficResult
from anycast_ctl.lab.net.cleanup import CleanupReport


def test_lab_render_writes_the_containerlab_lab(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "lab",
            "render",
            "topologies/default.yaml",
            "--format",
            "containerlab",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "default" / "default.clab.yml").exists()
    assert (tmp_path / "default" / "lb1" / "haproxy.cfg").exists()
    assert "warning: " in result.stderr and "Linux 6.11" in result.stderr


def test_lab_render_refuses_other_formats(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["lab", "render", "topologies/default.yaml", "--format", "docker", "--out", str(tmp_path)],
    )
    assert result.exit_code == 2


def _flow(sport, lb, predicted, ok=True):
    return FlowResult(
        "c1",
        "web",
        "198.18.1.1",
        sport,
        "192.0.2.10",
        443,
        ok,
        lb=lb,
        predicted=predicted,
        error=None if ok else "timeout after 5s",
    )


def test_traffic_text_shows_shares_agreement_and_lists_mismatches_and_failures():
    text = traffic_text(
        TrafficResult(
            [_flow(1, "lb1", "lb1"), _flow(2, "lb2", "lb1"), _flow(3, None, "lb2", ok=False)],
            seconds=0.5,
        )
    )
    assert "2/3 connections ok" in text
    assert "1/3 flows as predicted" in text
    assert "198.18.1.1:2 -> 192.0.2.10:443 (c1): went to lb2, predicted lb1" in text
    assert "198.18.1.1:3 -> 192.0.2.10:443 (c1): timeout after 5s" in text
    refused = _flow(4, None, "lb2", ok=False)
    refused.reason, refused.error = "refused-by-allow-list", "ConnectionResetError: reset"
    reasons = traffic_text(TrafficResult([_flow(1, "lb1", "lb1"), refused], seconds=0.1))
    assert "failed by reason: refused-by-allow-list 1" in reasons
    assert "(c1): refused-by-allow-list: ConnectionResetError: reset" in reasons
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("lb")}
    assert lines["lb1"][1:] == ["1", "50.0%", "2"] and lines["lb2"][1:] == ["1", "50.0%", "1"]


def test_status_text_says_what_is_not_converged():
    status = {
        "name": "x",
        "tag": "acx-x",
        "topology": "default",
        "namespaces": {"r1": True, "lb1": False},
        "daemons": {
            "r1": {"bgpd": {"pid": 1, "running": True, "log": None}},
            "lb1": {"exabgp": {"pid": 2, "running": False, "log": None}},
        },
        "routers": {"r1": {"sessions": {"lb1": "Active"}, "fib": {"web": []}}},
        "agents": {"lb1": {"ok": False, "error": "no agent listening"}},
        "problems": ["r1: session to lb1 is Active"],
        "converged": False,
    }
    text = status_text(status)
    assert "namespaces: 1/2 (missing: lb1)" in text
    assert "daemons running: 1/2 (not running: exabgp@lb1)" in text
    assert "web -> (none)" in text and "lb1=Active" in text
    assert "NOT converged:\n  r1: session to lb1 is Active" in text


def test_cleanup_text_counts_what_was_removed():
    report = CleanupReport(
        tag="acx-x", terminated=[1, 2], killed=[3], namespaces=["acx-x-r1"], files=["/run/a"]
    )
    assert cleanup_text("x", report).splitlines()[0] == (
        "lab x: removed 1 namespaces, 3 processes (1 needed SIGKILL), 1 files/dirs, 0 mounts"
    )


def test_agents_table_names_every_column_and_who_drained():
    from anycast_ctl.cli.lab_format import agents_table

    status = {
        "agents": {
            "lb1": {
                "ok": True,
                "vips": [
                    {
                        "address": "192.0.2.10/32",
                        "state": "drained",
                        "announced": False,
                        "drain": {"by": "alice", "reason": "kernel upgrade"},
                    }
                ],
            }
        }
    }
    header, _, row = agents_table(status).splitlines()
    assert header.split() == ["LB", "node", "VIP", "state", "route", "drained", "by"]
    assert row.split() == [
        "lb1",
        "192.0.2.10/32",
        "drained",
        "withdrawn",
        "alice:",
        "kernel",
        "upgrade",
    ]


def test_a_lab_named_by_its_tag_is_found_by_its_tag():
    from anycast_ctl.lab.bringup import tag_named

    assert tag_named("t1", ["acx-t1"]) == "acx-t1"
    assert tag_named("acx-t1", ["acx-t1"]) == "acx-t1"  # as `ip netns list` shows it
    assert tag_named("acx-t1", ["acx-acx-t1"]) == "acx-acx-t1"  # a lab really named acx-t1
    assert tag_named("acx-t1", []) == "acx-acx-t1"
