"""`make demo` without root: it says what it needs and still runs the simulator part."""

import os

from cli_support import run_cli


def test_demo_without_root_explains_and_runs_the_simulator(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, out, err = run_cli("demo", "--out", str(tmp_path))
    assert code == 0, err
    assert "needs root" in out
    assert "lb1" in out and "imbalance" in out  # the simulator's table for the default topology
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())  # the plots were written
