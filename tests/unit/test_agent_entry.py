"""`anycast-ctl agent run`: its own command-line reading, its refusals, and what it imports.

ExaBGP starts the agent at every restart and the node is out of every FIB until its first
announce, so the agent's path leaves out click, the CLI, numpy, the simulator, the topology's
models and the renderers' templates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from anycast_ctl.agent.main import run_args
from anycast_ctl.config.topology import load_topology
from anycast_ctl.entry import main
from anycast_ctl.render.node_config import Rendering, node_config_data

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["n.yaml"], ("n.yaml", "info", None)),
        (["n.yaml", "--log-level", "debug"], ("n.yaml", "debug", None)),
        (["--log-level=warning", "n.yaml"], ("n.yaml", "warning", None)),
        (["n.yaml", "--stall-after", "0"], ("n.yaml", "info", 0.0)),
        (["n.yaml", "--stall-after=0.6", "--log-level", "error"], ("n.yaml", "error", 0.6)),
        (["n.yaml", "--stall-after", "3600"], ("n.yaml", "info", 3600.0)),
    ],
)
def test_a_plain_command_line_is_read_without_the_cli(args, parsed) -> None:
    assert run_args(args) == parsed


@pytest.mark.parametrize(
    "args",
    [
        [],  # no config
        ["a.yaml", "b.yaml"],
        ["--help"],
        ["n.yaml", "-h"],
        ["n.yaml", "--log-level"],  # no value
        ["n.yaml", "--log-level", "loud"],
        ["n.yaml", "--log-level", "info", "--log-level", "debug"],
        ["n.yaml", "--stall-after", "0.1"],  # under the guardian's floor
        ["n.yaml", "--stall-after", "nan"],
        ["n.yaml", "--stall-after", "inf"],
        ["n.yaml", "--stall-after", "-1"],
        ["n.yaml", "--stall-after", "3601"],
        ["n.yaml", "--stall-after", "soon"],
        ["n.yaml", "--verbose"],
        ["--", "n.yaml"],
    ],
)
def test_anything_else_is_left_to_the_cli_which_says_what_is_wrong(args) -> None:
    assert run_args(args) is None


def test_a_bad_config_exits_2_with_one_error_line_per_problem(tmp_path, capsys) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("node: x\nvips: 3\n")
    with pytest.raises(SystemExit) as exited:
        main(["agent", "run", str(path)])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"error: {path}: ") for line in lines)
    assert any("vips" in line for line in lines)


def test_a_bad_option_still_gets_the_cli_s_one_line(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["agent", "run", str(tmp_path / "n.yaml"), "--stall-after", "0.1"])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: Invalid value for '--stall-after'") and "0.3 s" in line


# Run as far as the agent's first await (the ExaBGP pipe), then report what is imported.
PROBE = """
import json, sys
import anycast_ctl.agent.speaker as speaker

async def stop_here():
    import anycast_ctl.chance.agent  # what AgentRuntime imports when second_chance is on
    print(json.dumps(sorted(sys.modules)))
    raise SystemExit(0)

speaker.stdio_speaker = stop_here
from anycast_ctl.entry import main
main(["agent", "run", sys.argv[1]])
"""
NOT_ON_THE_AGENT_PATH = (
    "click",
    "numpy",
    "jinja2",
    "matplotlib",
    "anycast_ctl.cli",
    "anycast_ctl.sim.owners",
    "anycast_ctl.chance.likely",
    "anycast_ctl.config.topology",
    "anycast_ctl.config.topology_model",
    "anycast_ctl.lab",
)


def test_the_agent_imports_only_what_it_runs_on(tmp_path) -> None:
    topology = load_topology(TOPOLOGIES / "default.yaml")
    how = Rendering(tmp_path, "recommended", None, tmp_path / "topology.yaml", None)
    data = node_config_data(topology, "lb1", topology.address_plan(), how)
    assert data["second_chance"]["enabled"]  # type: ignore[index]
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout)
    assert "anycast_ctl.agent.runtime" in modules and "anycast_ctl.chance.agent" in modules
    unwanted = [
        m for m in modules if any(m == n or m.startswith(f"{n}.") for n in NOT_ON_THE_AGENT_PATH)
    ]
    assert unwanted == []
