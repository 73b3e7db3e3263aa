"""`anycast-ctl sim ... --json` for the shipped topologies, against reviewed golden files.

Regenerate with UPDATE_GOLDEN=1 after an intended change and read the diff: a moved share or a
new collateral figure is a behaviour change, not noise (flows are generated from fixed seeds).
"""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from anycast_ctl.cli import main

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent / "sim"
CASES = {
    "default": ["run", "topologies/default.yaml"],
    "two-routers": ["run", "topologies/two-routers.yaml"],
    "leaf-spine": ["run", "topologies/leaf-spine.yaml"],
    "leaf-spine-same-seed": ["run", "topologies/leaf-spine.yaml", "--same-seed", "--no-events"],
    "default-compare": ["compare", "topologies/default.yaml"],
    "leaf-spine-per-spine-seeds": ["run", "topologies/leaf-spine-per-spine-seeds.yaml"],
    "hybrid": ["run", "topologies/hybrid.yaml"],
    "advise-default": ["advise", "topologies/default.yaml"],
    "advise-leaf-spine-per-spine-seeds": ["advise", "topologies/leaf-spine-per-spine-seeds.yaml"],
    "advise-hybrid": ["advise", "topologies/hybrid.yaml"],
}


def run_cli(args):
    with CliRunner().isolation() as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.mark.parametrize("case", sorted(CASES))
def test_sim_json_matches_golden(case, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(["sim", *CASES[case], "--flows", "20000", "--seed", "1", "--json"])
    assert code == 0, err
    got = json.loads(out)
    golden = HERE / f"{case}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(golden.read_text())


def test_polarization_golden_shows_idle_spine_links():
    data = json.loads((HERE / "leaf-spine-same-seed.json").read_text())
    idle = {p["router"]: p["unused"] for p in data["polarization"] if p["polarized"]}
    assert idle == {"s1": ["lb5", "lb6", "lb7", "lb8"], "s2": ["lb1", "lb2", "lb3", "lb4"]}
