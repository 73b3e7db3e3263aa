"""docs/monitoring/: the alert rules pass promtool's checks and unit tests, the dashboard loads,
and both name only metrics the agent defines (HAProxy's are checked against a real exporter in
tests/integration/test_haproxy_edge_policy_real.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from anycast_ctl.agent.metrics import AgentMetrics
from anycast_ctl.chance.metrics_view import ChanceView
from anycast_ctl.chance.nft_counters import ChanceCounters, Count

MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
RULES = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: prometheus; make sysdeps as root)"
)
METRIC = re.compile(r"\b((?:anycast|haproxy)_[a-z_]+)\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=60
    )


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = yaml.safe_load(RULES.read_text())
    count = sum(len(group["rules"]) for group in rules["groups"])
    # promtool read every rule of the file, not only the first group
    assert f"SUCCESS: {count} rules found" in done.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_accepts_the_example_scrape_config() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_the_edge_needs_is_there_and_unit_tested() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "AnycastVipWithdrawnEverywhere",
        "AnycastVipFlapping",
        "AnycastVipSuppressed",
        "AnycastCertificateExpiring",
        "HaproxyRateLimitRefusalsSpiking",
        "AnycastAgentDown",
        "AnycastExabgpDown",
        "HaproxyDown",
    } <= alerts
    tests = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
    assert tested == alerts


def agent_metric_names() -> set[str]:
    names = set()
    metrics = AgentMetrics("lb1")
    # The second chance's families exist once it is on: a node with a table and a peer.
    view = ChanceView({"lb2": "live"}, loaded=True, forwarding=True, generation=1, age=0.5)
    metrics.watch_chance(lambda: view, lambda: ChanceCounters(True, Count(), {"lb2": Count()}))
    for family in metrics.registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_loads_with_the_expected_panels() -> None:
    board = dashboard()
    assert board["uid"] == "anycast-ctl" and board["schemaVersion"] >= 36
    titles = [p["title"] for p in board["panels"]]
    assert len(set(titles)) == len(titles)
    assert {
        "Nodes announcing each VIP",
        "VIP state changes per minute",
        "Check latency p99",
        "ExaBGP alive",
        "Certificate days left",
        "HAProxy: refused by allow_sources per second",
        "HAProxy: refused by rate_limit per second",
        "HAProxy: refused by SNI routing per second",
        "HAProxy: servers up per pool",
    } <= set(titles)
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)
    cells = set()
    for p in board["panels"]:
        assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"]), p["title"]
        grid = p["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "instance"} <= variables


def test_rules_and_dashboard_name_only_metrics_the_agent_defines() -> None:
    used = set(METRIC.findall(RULES.read_text())) | set(METRIC.findall(DASHBOARD.read_text()))
    agent = {m for m in used if m.startswith("anycast_")}
    assert agent and agent <= agent_metric_names(), agent - agent_metric_names()
