"""Drain state that survives agent and node restarts: who drained what, when and why.

The state object (`DrainState`) is pure and immutable: `drain`/`undrain` return a new state,
time is passed in. File I/O lives only in `load_drain_state`, `load_or_drain_all` and
`save_drain_state`.

File format (JSON):
    {"node": {"by": "alice", "uid": 1000, "reason": "kernel upgrade", "at": 1700000000.0} | null,
     "vips": {"192.0.2.10/32": {"by": ..., "uid": ..., "reason": ..., "at": ...}}}

Fail closed: a missing file means nothing is drained (a fresh node), but a file that exists
and cannot be read or parsed is an error. The agent must then not announce anything, because
the file may have said "drained" — `load_or_drain_all` returns a whole-node drain in that
case (plus the problem, for the log), and an operator's `undrain` overwrites the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from anycast_ctl.agent.dirs import make_dirs
from anycast_ctl.errors import Problem, UserError

# The uid recorded when the agent drains by itself (corrupt or unreadable drain file).
AGENT_UID = -1


@dataclass(frozen=True)
class DrainRecord:
    by: str  # user name of the operator (or "anycast-ctl" when the agent drained by itself)
    uid: int
    reason: str
    at: float  # wall-clock time (time.time())

    def as_dict(self) -> dict:
        """The JSON form, as in the drain file and the status payload."""
        return {"by": self.by, "uid": self.uid, "reason": self.reason, "at": self.at}


def _frozen(vips: Mapping[str, DrainRecord]) -> Mapping[str, DrainRecord]:
    return MappingProxyType(dict(sorted(vips.items())))


@dataclass(frozen=True)
class DrainState:
    node: DrainRecord | None = None
    vips: Mapping[str, DrainRecord] = field(default_factory=lambda: _frozen({}))

    @classmethod
    def drain_all(cls, reason: str, now: float) -> DrainState:
        """The whole node drained by the agent itself (uid AGENT_UID), e.g. for a bad file."""
        return cls(node=DrainRecord(by="anycast-ctl", uid=AGENT_UID, reason=reason, at=now))

    def drain(
        self, vips: Iterable[str] | None, by: str, uid: int, reason: str, now: float
    ) -> DrainState:
        """Drain the given VIPs, or the whole node when `vips` is None (or empty).
        Draining again replaces the record: the latest who/why wins (the audit log keeps all)."""
        record = DrainRecord(by=by, uid=uid, reason=reason, at=now)
        targets = list(vips or [])
        if not targets:
            return DrainState(node=record, vips=self.vips)
        return DrainState(
            node=self.node, vips=_frozen({**self.vips, **{v: record for v in targets}})
        )

    def undrain(self, vips: Iterable[str] | None) -> DrainState:
        """Undrain the given VIPs, or lift the whole-node drain when `vips` is None (or empty).

        Lifting the node drain leaves per-VIP drains in place: a VIP drained on its own for
        its own reason stays out until someone undrains it by name (fail closed)."""
        targets = list(vips or [])
        if not targets:
            return DrainState(node=None, vips=self.vips)
        return DrainState(
            node=self.node, vips=_frozen({k: r for k, r in self.vips.items() if k not in targets})
        )

    def is_drained(self, prefix: str) -> DrainRecord | None:
        """The record that keeps `prefix` out of service, or None. The node drain comes first:
        it is the one that still holds the VIP after a per-VIP undrain."""
        return self.node or self.vips.get(prefix)

    @property
    def anything_drained(self) -> bool:
        return self.node is not None or bool(self.vips)

    def to_json(self) -> dict:
        return {
            "node": self.node.as_dict() if self.node else None,
            "vips": {prefix: record.as_dict() for prefix, record in self.vips.items()},
        }

    @classmethod
    def from_json(cls, data: object, source: str) -> DrainState:
        """Parse the file's JSON; every problem is reported with its path (pure)."""
        if not isinstance(data, dict):
            raise UserError.single(source, "", "expected a JSON object with 'node' and 'vips'")
        problems: list[Problem] = []
        unknown = sorted(set(data) - {"node", "vips"})
        problems += [Problem(source, key, "unknown field") for key in unknown]
        node = None
        if data.get("node") is not None:
            node = _record(data["node"], "node", source, problems)
        vips: dict[str, DrainRecord] = {}
        raw_vips = data.get("vips", {})
        if not isinstance(raw_vips, dict):
            problems.append(
                Problem(source, "vips", "expected an object mapping VIP prefixes to drain records")
            )
        else:
            for prefix, raw in raw_vips.items():
                record = _record(raw, f"vips[{prefix!r}]", source, problems)
                if record is not None:
                    vips[prefix] = record
        if problems:
            raise UserError(problems)
        return cls(node=node, vips=_frozen(vips))


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "by": str,
    "uid": int,
    "reason": str,
    "at": (int, float),
}


def _record(raw: object, where: str, source: str, problems: list[Problem]) -> DrainRecord | None:
    if not isinstance(raw, dict):
        problems.append(Problem(source, where, "expected an object with by, uid, reason, at"))
        return None
    bad = False
    for name, kind in _FIELDS.items():
        value = raw.get(name)
        if name not in raw:
            problems.append(Problem(source, f"{where}.{name}", "required field is missing"))
            bad = True
        elif isinstance(value, bool) or not isinstance(value, kind):
            problems.append(
                Problem(source, f"{where}.{name}", f"wrong type: {type(value).__name__}")
            )
            bad = True
    for name in sorted(set(raw) - set(_FIELDS)):
        problems.append(Problem(source, f"{where}.{name}", "unknown field"))
        bad = True
    if bad:
        return None
    return DrainRecord(by=raw["by"], uid=raw["uid"], reason=raw["reason"], at=float(raw["at"]))


# ---------------------------------------------------------------- file I/O
def load_drain_state(path: str | Path) -> DrainState:
    """Read the drain file. Missing: nothing drained. Unreadable or corrupt: UserError naming it."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DrainState()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError.single(source, "", f"cannot read drain state: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError.single(
            source, f"line {exc.lineno}, column {exc.colno}", f"corrupt drain state: {exc.msg}"
        ) from None
    return DrainState.from_json(data, source)


def load_or_drain_all(path: str | Path, now: float) -> tuple[DrainState, UserError | None]:
    """Like `load_drain_state`, but a corrupt or unreadable file drains the whole node
    instead of raising: we cannot know what it said, so nothing is announced until an
    operator looks (fail closed). Returns (state, the problem or None) so the runtime can
    log the problem and show it in `status`."""
    try:
        return load_drain_state(path), None
    except UserError as exc:
        reason = (
            f"drain file {path} is unreadable, draining everything until an operator undrains:"
            f" {exc.lines()[0]}"
        )
        return DrainState.drain_all(reason, now), exc


# The agent's user writes it, its group (the operators') may read it, nobody else (docs/systemd.md).
STATE_DIR_MODE = 0o750
STATE_FILE_MODE = 0o640


def save_drain_state(path: str | Path, state: DrainState) -> None:
    """Write atomically: a temporary file in the same directory, fsync, rename, fsync the
    directory. A crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    make_dirs(path.parent, STATE_DIR_MODE)
    payload = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, STATE_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
