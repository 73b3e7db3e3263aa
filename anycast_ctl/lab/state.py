"""A lab's bookkeeping: /run/anycast-ctl/lab/<tag>/state.json lists what the lab created.

Things are recorded *before* they are created (a namespace) or as soon as they exist (a
process), so a crash in between leaves at most a record of something absent, never something
present without a record. Cleanup does not rely on this file alone: it also finds processes by
their ANYCAST_CTL_LAB environment tag and namespaces by their `<tag>-` prefix.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from anycast_ctl.errors import UserError

STATE_ROOT = Path("/run/anycast-ctl/lab")
ENV_TAG = "ANYCAST_CTL_LAB"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def check_name(value: str, what: str) -> str:
    """Tags and node names end up in paths and namespace names: keep them plain."""
    if not _NAME_RE.match(value):
        raise UserError.single(
            "<lab>", what, f"{value!r}: use 1-40 of A-Z a-z 0-9 _ . - (starting alphanumeric)"
        )
    return value


def namespace_name(tag: str, node: str) -> str:
    return f"{check_name(tag, 'tag')}-{check_name(node, 'node')}"


@dataclass
class DaemonRecord:
    node: str
    name: str
    pid: int
    start_time: int  # /proc/<pid>/stat field 22: guards against a recycled pid
    argv: list[str]
    netns: str | None = None
    log: str | None = None
    pidfile: str | None = None


@dataclass
class LabState:
    tag: str
    namespaces: list[str] = field(default_factory=list)
    daemons: list[DaemonRecord] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LabState:
        raw = json.loads(text)
        return cls(
            tag=raw["tag"],
            namespaces=list(raw.get("namespaces", [])),
            daemons=[DaemonRecord(**d) for d in raw.get("daemons", [])],
            files=list(raw.get("files", [])),
        )


def state_dir(tag: str) -> Path:
    return STATE_ROOT / check_name(tag, "tag")


def node_dir(tag: str, node: str) -> Path:
    return state_dir(tag) / check_name(node, "node")


def load(tag: str) -> LabState | None:
    try:
        return LabState.from_json((state_dir(tag) / "state.json").read_text())
    except FileNotFoundError:
        return None


def all_tags() -> list[str]:
    try:
        return sorted(p.name for p in STATE_ROOT.iterdir() if (p / "state.json").exists())
    except FileNotFoundError:
        return []


@contextmanager
def updating(tag: str) -> Iterator[LabState]:
    """Read-modify-write state.json under a lock (a lab may be driven by several processes)."""
    directory = state_dir(tag)
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = load(tag) or LabState(tag=tag)
        yield current
        tmp = directory / "state.json.tmp"
        tmp.write_text(current.to_json())
        os.replace(tmp, directory / "state.json")


def record_namespace(tag: str, name: str) -> None:
    with updating(tag) as st:
        if name not in st.namespaces:
            st.namespaces.append(name)


def forget_namespace(tag: str, name: str) -> None:
    with updating(tag) as st:
        st.namespaces = [n for n in st.namespaces if n != name]


def record_daemon(tag: str, record: DaemonRecord) -> None:
    with updating(tag) as st:
        st.daemons.append(record)


def record_file(tag: str, path: str | Path) -> None:
    """A file or directory outside the state dir that belongs to the lab (e.g. /run/frr/<ns>)."""
    with updating(tag) as st:
        if str(path) not in st.files:
            st.files.append(str(path))
