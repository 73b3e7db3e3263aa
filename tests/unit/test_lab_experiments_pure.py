"""The pure modules of lab/experiments import no I/O module of the lab (docs/architecture.md):
they load and run without a lab, and a pure module that pulled in scenarios.py would not."""

from __future__ import annotations

import json
import subprocess
import sys

PACKAGE = "anycast_ctl.lab.experiments"
PURE = (
    "scenario_names",
    "failover_settings",
    "forwarding",
    "failover_goals",
    "failover_report",
    "baseline",  # the healthcheck's options, rendered: it writes nothing
)


def test_the_pure_experiment_modules_import_no_lab_io_module() -> None:
    # A fresh interpreter: this test session's own imports would hide what they pull in.
    probe = (
        "import importlib, json, sys; "
        f"[importlib.import_module(f'{PACKAGE}.{{m}}') for m in {list(PURE)!r}]; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('anycast_ctl.lab'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    allowed = {"anycast_ctl.lab", PACKAGE} | {f"{PACKAGE}.{m}" for m in PURE}
    assert loaded - allowed == set()
