"""Persistent drain state: pure transitions, atomic save, fail-closed load."""

import json
import os

import pytest

from anycast_ctl.agent.drainstore import (
    AGENT_UID,
    DrainRecord,
    DrainState,
    load_drain_state,
    load_or_drain_all,
    save_drain_state,
)
from anycast_ctl.errors import UserError

A, B = "192.0.2.10/32", "2001:db8::10/128"


def test_nothing_is_drained_initially():
    state = DrainState()
    assert state.is_drained(A) is None
    assert not state.anything_drained


def test_drain_one_vip_leaves_the_others():
    state = DrainState().drain([A], "alice", 1000, "backend fix", 10.0)
    assert state.is_drained(A) == DrainRecord("alice", 1000, "backend fix", 10.0)
    assert state.is_drained(B) is None


def test_drain_whole_node_covers_every_vip():
    state = DrainState().drain(None, "bob", 1001, "kernel upgrade", 20.0)
    assert state.is_drained(A).reason == "kernel upgrade"
    assert state.is_drained(B).by == "bob"


def test_empty_vip_list_means_whole_node():
    assert DrainState().drain([], "bob", 1001, "x", 1.0).node is not None


def test_undrain_vip():
    state = DrainState().drain([A, B], "alice", 1000, "r", 1.0).undrain([A])
    assert state.is_drained(A) is None
    assert state.is_drained(B) is not None


def test_node_undrain_keeps_vip_specific_drains():
    state = (
        DrainState()
        .drain([A], "alice", 1000, "backend fix", 1.0)
        .drain(None, "bob", 1001, "kernel upgrade", 2.0)
        .undrain(None)
    )
    assert state.node is None
    assert state.is_drained(A).reason == "backend fix"
    assert state.is_drained(B) is None


def test_node_drain_wins_over_vip_undrain():
    state = DrainState().drain(None, "bob", 1001, "upgrade", 2.0).undrain([A])
    assert state.is_drained(A).reason == "upgrade"


def test_redrain_replaces_who_and_why():
    state = (
        DrainState().drain([A], "alice", 1000, "first", 1.0).drain([A], "bob", 1001, "second", 2.0)
    )
    assert state.is_drained(A) == DrainRecord("bob", 1001, "second", 2.0)


def test_state_is_immutable():
    before = DrainState()
    before.drain([A], "alice", 1000, "r", 1.0)
    assert before.is_drained(A) is None
    with pytest.raises(TypeError):
        before.vips[A] = DrainRecord("x", 0, "y", 0.0)


def test_save_then_load_round_trips(tmp_path):
    path = tmp_path / "sub" / "drain.json"
    state = (
        DrainState()
        .drain([A], "alice", 1000, "backend fix", 10.5)
        .drain(None, "bob", 0, "upgrade", 11.0)
    )
    save_drain_state(path, state)
    assert load_drain_state(path) == state
    assert json.loads(path.read_text())["vips"][A]["by"] == "alice"
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert [p.name for p in path.parent.iterdir()] == ["drain.json"]  # no temporary left behind


def test_save_replaces_atomically_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "drain.json"
    save_drain_state(path, DrainState().drain([A], "alice", 1000, "old", 1.0))

    def broken_fsync(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        save_drain_state(path, DrainState())
    monkeypatch.undo()
    assert load_drain_state(path).is_drained(A).reason == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["drain.json"]


def test_missing_file_means_nothing_drained(tmp_path):
    assert load_drain_state(tmp_path / "absent.json") == DrainState()


def test_corrupt_file_names_the_file_and_position(tmp_path):
    path = tmp_path / "drain.json"
    path.write_text('{"node": null, "vips": {')
    with pytest.raises(UserError) as caught:
        load_drain_state(path)
    line = caught.value.lines()[0]
    assert str(path) in line and "line 1" in line and "corrupt" in line


def test_wrong_shape_names_every_bad_field(tmp_path):
    path = tmp_path / "drain.json"
    path.write_text(
        json.dumps({"node": {"by": "x", "uid": "zero", "at": 1}, "vips": {A: []}, "extra": 1})
    )
    with pytest.raises(UserError) as caught:
        load_drain_state(path)
    wheres = {p.where for p in caught.value.problems}
    assert wheres == {"extra", "node.uid", "node.reason", f"vips[{A!r}]"}


def test_load_or_drain_all_fails_closed_on_a_corrupt_file(tmp_path):
    path = tmp_path / "drain.json"
    path.write_text("not json")
    state, problem = load_or_drain_all(path, now=42.0)
    assert problem is not None
    record = state.is_drained(A)
    assert record.uid == AGENT_UID and record.at == 42.0 and str(path) in record.reason


def test_load_or_drain_all_passes_a_good_file_through(tmp_path):
    path = tmp_path / "drain.json"
    saved = DrainState().drain([A], "alice", 1000, "r", 1.0)
    save_drain_state(path, saved)
    assert load_or_drain_all(path, now=2.0) == (saved, None)


def test_drain_all_is_the_agent_draining_the_node():
    state = DrainState.drain_all("unreadable drain file", now=5.0)
    assert state.is_drained(A) == DrainRecord(
        "anycast-ctl", AGENT_UID, "unreadable drain file", 5.0
    )
