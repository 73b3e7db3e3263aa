"""`anycast-ctl sim advise` through `main` and through the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_support import run_cli

ROOT = Path(__file__).parents[2]
PER_SPINE = str(ROOT / "topologies/leaf-spine-per-spine-seeds.yaml")
DEFAULT = str(ROOT / "topologies/default.yaml")
CONSOLE_SCRIPT = Path(sys.executable).parent / "anycast-ctl"


def test_json_prints_exactly_the_findings():
    code, out, err = run_cli("sim", "advise", PER_SPINE, "--flows", "20k", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["findings"]
    kinds = [f["kind"] for f in data["findings"]]
    assert kinds[0] == "tier-seeds-differ"
    assert kinds.count("lb-withdrawal") == 8 and kinds.count("router-withdrawal") == 4
    first = data["findings"][0]
    assert first["routers"] == ["s1", "s2"] and first["fix"]["hashing"] == {"s2": {"seed": 20961}}
    assert first["flows_at_stake"] > 0.4 and first["flows_at_stake_with_fix"] == 0.0


def test_table_for_people_leads_with_what_to_fix():
    code, out, err = run_cli("sim", "advise", PER_SPINE, "--flows", "20k")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        "topology leaf-spine-per-spine-seeds: 20000 flows; 1 of 1 hashing findings to fix; "
        "12 withdrawals to plan for"
    )
    row = next(line for line in lines if line.startswith("1  tier-seeds-differ"))
    assert row.split()[2:5] == ["warning", "spine", "s1,"]
    assert "   fix: give the spine routers one hashing: s2: seed 0x51e1" in lines
    assert any(line.startswith("LB withdrawals") for line in lines)
    assert any(line.startswith("Router withdrawals") for line in lines)


def test_the_default_topology_has_nothing_to_fix_and_reproduces_the_lb1_figures():
    code, out, err = run_cli("sim", "advise", DEFAULT)  # 200k flows, as `sim run`
    assert code == 0, err
    assert "hashing: nothing to fix" in out
    lb1 = next(line.split() for line in out.splitlines() if line.strip().startswith("lb1 "))
    assert lb1[1:7] == ["50.0", "%", "33.3", "%", "16.8", "%"]


def test_flows_from_a_csv_file(tmp_path):
    rows = ["src,dst,proto,sport,dport"] + [
        f"198.18.1.{i % 250 + 1},192.0.2.10,6,{1024 + i},443" for i in range(300)
    ]
    csv = tmp_path / "flows.csv"
    csv.write_text("\n".join(rows) + "\n")
    code, out, err = run_cli("sim", "advise", DEFAULT, "--flows-file", str(csv), "--json")
    assert code == 0, err
    lb = [f for f in json.loads(out)["findings"] if f["kind"] == "lb-withdrawal"]
    assert len(lb) == 3 and all(0 < f["flows_at_stake"] <= 1 for f in lb)


def test_bad_input_is_one_line_naming_the_argument_and_exit_2(tmp_path):
    code, _, err = run_cli("sim", "advise", DEFAULT, "--flows", "lots")
    assert code == 2 and "--flows" in err and "Traceback" not in err
    missing = tmp_path / "nope.yaml"
    code, _, err = run_cli("sim", "advise", str(missing))
    assert code == 2 and str(missing) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_runs_the_same_command():
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "sim", "advise", PER_SPINE, "--flows", "20k", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["findings"][0]["kind"] == "tier-seeds-differ"
