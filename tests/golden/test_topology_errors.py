"""Bad topologies in, expected error lines out (netlab-style error golden files).

Each tests/golden/topology_errors/NAME.yaml has NAME.log next to it: the exact lines the CLI
would print after "error: ", with the file named by its base name. Regenerate with
UPDATE_GOLDEN=1 after an intended change, and read the diff.
"""

import os
from pathlib import Path

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.errors import UserError

HERE = Path(__file__).parent / "topology_errors"
CASES = sorted(p.stem for p in HERE.glob("*.yaml"))


def error_lines(path: Path) -> list[str]:
    with pytest.raises(UserError) as info:
        load_topology(path)
    return [line.replace(str(path), path.name) for line in info.value.lines()]


@pytest.mark.parametrize("case", CASES)
def test_bad_topology_gives_exactly_the_expected_errors(case):
    path = HERE / f"{case}.yaml"
    got = "\n".join(error_lines(path)) + "\n"
    golden = HERE / f"{case}.log"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(got)
    assert golden.exists(), f"no {golden.name}; run with UPDATE_GOLDEN=1 and review it"
    assert got == golden.read_text()


def test_every_golden_log_has_its_topology():
    assert {p.stem for p in HERE.glob("*.log")} == set(CASES)
