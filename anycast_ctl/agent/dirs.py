"""Directories the agent creates for its socket and its drain state, with their mode whatever
the umask: ExaBGP sets its own (0137 by default) and the agent, its child, inherits it, so a
plain `mkdir(parents=True)` made intermediate directories 0640, which not even their owner can
enter."""

from __future__ import annotations

import os
from pathlib import Path


def make_dirs(path: Path, mode: int) -> None:
    """Create `path` and each missing ancestor with exactly `mode`; existing ones are left
    as they are."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, left alone
        os.chmod(directory, mode)
