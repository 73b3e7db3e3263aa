"""`render haproxy|node|frr TOPOLOGY`: the files they write are the library's rendering."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from anycast_ctl.cli.render_topology_cmd import add_to
from anycast_ctl.config.node import load_node_config
from anycast_ctl.config.topology import load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.render.frr import render_frr
from anycast_ctl.render.haproxy import render_haproxy
from anycast_ctl.render.node_config import node_config
from anycast_ctl.render.plan import router_plans

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "two-routers.yaml"


@pytest.fixture
def render() -> click.Group:
    group = click.Group("render")
    add_to(group)
    return group


def test_render_haproxy_writes_the_nodes_config(render, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        render,
        [
            "haproxy",
            str(TOPOLOGY),
            "--node",
            "lb3",
            "--out",
            str(tmp_path / "o"),
            "--run-dir",
            "/run/x",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "o" / "haproxy.cfg")
    expected = render_haproxy(load_topology(TOPOLOGY), "lb3", run_dir=Path("/run/x"))
    assert (tmp_path / "o" / "haproxy.cfg").read_text() == expected


def test_render_node_writes_yaml_the_agent_loads(render, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        render,
        [
            "node",
            str(TOPOLOGY),
            "--node",
            "lb1",
            "--out",
            str(tmp_path),
            "--profile",
            "conservative",
        ],
    )
    assert result.exit_code == 0, result.output
    expected = node_config(
        load_topology(TOPOLOGY),
        "lb1",
        run_dir=Path("/run/anycast-ctl"),
        profile="conservative",
        state_dir=Path("/var/lib/anycast-ctl"),
        topology_file=Path("/etc/anycast-ctl/topology.yaml"),
    )
    loaded = load_node_config(tmp_path / "node.yaml")
    assert loaded == expected
    # Sockets in the runtime directory, the drain state where restarts and reboots keep it.
    assert loaded.control.socket == Path("/run/anycast-ctl/lb1/agent.sock")
    assert loaded.drain.state_file == Path("/var/lib/anycast-ctl/lb1/drain.json")


def test_render_frr_to_stdout(render) -> None:
    result = CliRunner().invoke(render, ["frr", str(TOPOLOGY), "--router", "r2", "--out", "-"])
    assert result.exit_code == 0, result.output
    assert result.output == render_frr(router_plans(load_topology(TOPOLOGY))["r2"])


@pytest.mark.parametrize(
    "args, field",
    [
        (["haproxy", str(TOPOLOGY), "--node", "r1", "--out", "-"], "--node"),
        (["frr", str(TOPOLOGY), "--router", "lb1", "--out", "-"], "--router"),
    ],
)
def test_an_unknown_node_is_a_user_error_naming_the_option(render, args, field) -> None:
    result = CliRunner().invoke(render, args)
    assert isinstance(result.exception, UserError)
    assert result.exception.problems[0].where == field
