"""python -m bench: the run order, the labs shared between modules, the closing summary and
its budget check; all without a lab (a stand-in Lab records what it was asked)."""

from __future__ import annotations

import sys
import types

import pytest

from bench import __main__ as runner, labs


def test_run_order_puts_modules_without_a_lab_first_then_lab_order_with_the_spoiler_last():
    modules = {
        "bench_chance": ("default", "leaf-spine"),
        "bench_csv": (),
        "bench_recovery": ("default",),
        "bench_bfd": ("default",),
        "bench_new": ("default",),
        "bench_failover": ("default", "hybrid"),
        "bench_checks": (),
    }
    order = runner.run_order(modules)
    assert order[:2] == ["bench_checks", "bench_csv"]
    assert order[2:5] == ["bench_failover", "bench_bfd", "bench_recovery"]
    assert order[-1] == "bench_chance"  # it spoils its labs, so nothing may come after it
    assert set(order) == set(modules)


def test_every_lab_module_of_the_bench_is_in_lab_order():
    """A lab module missing from LAB_ORDER would run at a guessed place."""
    import importlib
    import pkgutil
    from pathlib import Path

    here = Path(runner.__file__).parent
    names = [m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")]
    with_labs = [n for n in names if getattr(importlib.import_module(f"bench.{n}"), "LABS", ())]
    assert sorted(with_labs) == sorted(runner.LAB_ORDER)


def test_still_needed_is_the_union_of_the_remaining_modules_labs():
    assert labs.still_needed([("default", "hybrid"), (), ("default", "leaf-spine")]) == {
        "default",
        "hybrid",
        "leaf-spine",
    }
    assert labs.still_needed([]) == set()


def _timings(*walls: float) -> list[runner.Timing]:
    return [runner.Timing(f"bench_{i}", w, w / 4) for i, w in enumerate(walls)]


def test_summary_lists_every_module_and_the_total_with_its_cpu():
    lines = runner.summary(_timings(10.0, 20.5), 31.0, quick=False, loads=(1.0, 2.0))
    text = "\n".join(lines)
    assert "bench_0" in text and "bench_1" in text
    total = next(line for line in lines if line.strip().startswith("total"))
    assert "31.0 s" in total and "cpu     7.6 s" in total
    assert "load average (1 min) 1.0 at the start, 2.0 at the end" in text
    assert "WARNING" not in text and "budget" not in text  # a full run has no budget


def test_quick_summary_warns_only_past_the_budget():
    over = runner.summary(_timings(200.0, 150.0), runner.QUICK_BUDGET_S + 1, True, (0, 0))
    warning = [line for line in over if line.startswith("WARNING")]
    assert len(warning) == 1 and f"{runner.QUICK_BUDGET_S:.0f} s" in warning[0]
    within = runner.summary(_timings(100.0), runner.QUICK_BUDGET_S, True, (0, 0))
    assert not any(line.startswith("WARNING") for line in within)
    assert any("within the quick budget" in line for line in within)


@pytest.mark.parametrize("prefix", ["qb", "acx-bench", "A1_.-x", "x" * 24])
def test_good_prefixes_are_kept(prefix):
    assert labs.check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["", "-qb", "q b", "qb/x", "x" * 25])
def test_bad_prefixes_are_refused(prefix):
    with pytest.raises(labs.BadPrefix, match="lab prefix"):
        labs.check_prefix(prefix)


def test_prefix_comes_from_the_option_then_the_environment_then_the_default(monkeypatch):
    monkeypatch.delenv(labs.PREFIX_ENV, raising=False)
    assert labs.prefix_from_env() == labs.DEFAULT_PREFIX
    monkeypatch.setenv(labs.PREFIX_ENV, "env1")
    assert labs.prefix_from_env() == "env1"
    assert labs.prefix_from_env("opt1") == "opt1"


def test_bad_prefix_option_exits_2_with_one_line(capsys):
    assert runner.main(["--lab-prefix", "no good", "nothing-matches"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lab-prefix" in err[0] and "'no good'" in err[0]


class FakeLab:
    made: list[FakeLab] = []

    def __init__(self, path, tag):
        self.path, self.tag, self.downs = path, tag, 0
        self.bringup_seconds = 1.5

    @classmethod
    def up(cls, path, *, tag):
        lab = cls(path, tag)
        cls.made.append(lab)
        return lab

    def down(self):
        self.downs += 1


@pytest.fixture
def fake_lab(monkeypatch):
    FakeLab.made = []
    fake = types.ModuleType("anycast_ctl.lab.topology_up")
    fake.Lab = FakeLab
    monkeypatch.setitem(sys.modules, "anycast_ctl.lab.topology_up", fake)
    return FakeLab


def test_pool_brings_a_topology_up_once_under_prefix_topology(fake_lab):
    said: list[str] = []
    with labs.LabPool("qb", say=said.append) as pool:
        first = pool.lab("default")
        assert pool.lab("default") is first
        assert first.tag == "qb-default" and first.path.name == "default.yaml"
        assert pool.running() == ["default"]
    assert [lab.downs for lab in fake_lab.made] == [1]
    assert any("qb-default up in 1.5 s" in line for line in said)


def test_done_keeps_what_a_later_module_needs_and_spoil_never_does(fake_lab):
    pool = labs.LabPool("qb", say=lambda _m: None)
    pool.later = {"default"}
    default, hybrid = pool.lab("default"), pool.lab("hybrid")
    pool.done("hybrid")
    pool.done("default")
    assert (hybrid.downs, default.downs) == (1, 0) and pool.running() == ["default"]
    pool.spoil("default")
    assert default.downs == 1 and pool.running() == []
    assert pool.lab("default") is not default  # a fresh one after a spoil
    pool.close()


def test_keep_only_downs_the_rest(fake_lab):
    pool = labs.LabPool("qb", say=lambda _m: None)
    for topology in ("default", "hybrid", "leaf-spine"):
        pool.lab(topology)
    pool.keep_only({"hybrid"})
    assert pool.running() == ["hybrid"]
    pool.close()
    assert all(lab.downs == 1 for lab in fake_lab.made)


def test_pool_for_closes_only_a_pool_of_its_own(fake_lab, monkeypatch):
    monkeypatch.setenv(labs.PREFIX_ENV, "qb")
    shared = labs.LabPool("qb", say=lambda _m: None)
    with labs.pool_for(shared) as pool:
        assert pool is shared
        pool.lab("default")
    assert shared.running() == ["default"]
    with labs.pool_for(None) as own:
        assert own is not shared and own.prefix == "qb"
        own.lab("hybrid")
    assert own.running() == []
    shared.close()


def test_quick_failover_runs_every_scenario_for_the_agent_and_leaves_only_known_misses_out():
    from bench import bench_failover

    every = ["steady", "haproxy-kill", "haproxy-hang", "agent-kill", "exabgp-hang", "flaky"]
    assert bench_failover.scenarios_for("anycast", every, quick=True) == every
    assert bench_failover.scenarios_for("exabgp-fast", every, quick=False) == every
    baseline = bench_failover.scenarios_for("exabgp-fast", every, quick=True)
    assert baseline == ["steady", "haproxy-kill", "flaky"]
