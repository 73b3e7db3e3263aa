"""The agent's socket and drain-state directories get their mode under ExaBGP's umask (0137),
which made a plain mkdir(parents=True) leave 0640 directories not even their owner can enter."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from anycast_ctl.agent.dirs import make_dirs
from anycast_ctl.agent.drainstore import STATE_DIR_MODE, DrainState, save_drain_state

EXABGP_UMASK = 0o137  # ExaBGP's daemon.umask default, inherited by its API process


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def under_exabgp_umask(action):
    old = os.umask(EXABGP_UMASK)
    try:
        return action()
    finally:
        os.umask(old)


def test_every_missing_ancestor_gets_the_mode_whatever_the_umask(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    under_exabgp_umask(lambda: make_dirs(target, 0o750))
    for directory in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert mode(directory) == 0o750, directory


def test_existing_directories_are_left_as_they_are(tmp_path):
    tmp_path.chmod(0o755)
    make_dirs(tmp_path / "new", 0o750)
    assert mode(tmp_path) == 0o755 and mode(tmp_path / "new") == 0o750


def test_the_drain_state_is_saved_into_new_directories_under_exabgps_umask(tmp_path):
    path = tmp_path / "var" / "lib" / "lb1" / "drain.json"
    under_exabgp_umask(lambda: save_drain_state(path, DrainState()))
    assert path.exists()
    assert mode(tmp_path / "var") == mode(path.parent) == STATE_DIR_MODE
