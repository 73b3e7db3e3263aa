"""lab/experiments/baseline.py: the ExaBGP healthcheck's config file and process line (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab.experiments.baseline import (
    SETTINGS,
    Implementation,
    Target,
    api_for,
    detection_bound,
    healthcheck_config,
    lb_targets,
    probe_command,
)

ROOT = Path(__file__).resolve().parents[2]
WEB = Target("192.0.2.10/32", "192.0.2.10", 443)


def options(text: str) -> dict[str, list[str]]:
    """Parse the file the way the healthcheck does: `key = value`, or a bare flag."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_default_preset_is_the_healthchecks_own_defaults_plus_withdraw():
    opts = options(
        healthcheck_config("lb1", [WEB], SETTINGS[Implementation.EXABGP_DEFAULT], Path("/d/off"))
    )
    assert {k: opts[k] for k in ("interval", "fast-interval", "rise", "fall", "timeout")} == {
        "interval": ["5"],
        "fast-interval": ["1"],
        "rise": ["3"],
        "fall": ["3"],
        "timeout": ["5"],
    }
    assert opts["withdraw-on-down"] == [""] and opts["disable"] == ["/d/off"]
    assert opts["ip"] == ["192.0.2.10/32"]
    assert opts["command"] == ["bash -c '</dev/tcp/192.0.2.10/443'"]


def test_fast_preset_bounds_its_probe_below_the_one_second_floor():
    opts = options(
        healthcheck_config("lb1", [WEB], SETTINGS[Implementation.EXABGP_FAST], Path("/d/off"))
    )
    assert opts["interval"] == ["0.1"] and opts["fall"] == ["2"] and opts["timeout"] == ["1"]
    assert opts["command"] == ["timeout 0.08 bash -c '</dev/tcp/192.0.2.10/443'"]


def test_every_vip_of_the_node_is_probed_and_announced():
    v6 = Target("fd00::10/128", "fd00::10", 8443)
    opts = options(
        healthcheck_config("lb1", [WEB, v6], SETTINGS[Implementation.EXABGP_FAST], Path("/x"))
    )
    assert opts["ip"] == ["192.0.2.10/32", "fd00::10/128"]
    assert opts["command"][0].count("/dev/tcp/") == 2 and " && " in opts["command"][0]


@pytest.mark.parametrize("bad", ["192.0.2.10'; rm -rf /", "a\nb", 'x"y'])
def test_unsafe_values_are_refused(bad):
    with pytest.raises(UserError):
        probe_command([Target("x", bad, 443)], None)


def test_no_vip_is_refused():
    with pytest.raises(UserError, match="nothing to check"):
        probe_command([], None)


def test_api_is_none_for_our_agent_and_renders_the_config_for_a_baseline(tmp_path):
    topo = load_topology(ROOT / "topologies" / "default.yaml")
    assert api_for("anycast", topo) is None
    process = api_for("exabgp-fast", topo)("lb2", tmp_path)
    assert process.argv[1:5] == ("-m", "exabgp", "healthcheck", "--config")
    assert process.argv[5] == str(tmp_path / "healthcheck.conf")
    written = options(process.files["healthcheck.conf"])
    assert written["name"] == ["lb2"] and written["ip"] == [
        t.address for t in lb_targets(topo, "lb2")
    ]
    assert written["disable"] == [str(tmp_path / "healthcheck.disable")]


def test_detection_bound():
    assert detection_bound(SETTINGS[Implementation.EXABGP_DEFAULT]) == 5 + 2 * 1 + 3 * 5
    assert detection_bound(SETTINGS[Implementation.EXABGP_FAST]) == pytest.approx(
        0.1 + 0.1 + 2 * 0.08
    )
