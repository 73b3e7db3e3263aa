"""Remove everything a lab tag owns, and prove that nothing is left.

What belongs to tag T:
  processes  - environment has ANYCAST_CTL_LAB=T, or living in one of T's namespaces, or
               recorded in T's state.json (same pid *and* start time);
  namespaces - recorded by T, or named `T-...` and not recorded by another lab (so cleaning
               "acx" never touches lab "acx-b"'s "acx-b-r1");
  files      - T's state dir, the files T recorded, FRR's /run/frr/<namespace> dirs;
  mounts     - /run/netns/<namespace> bind mounts and anything mounted under the state dir.
Never by process name.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from anycast_ctl.lab import state
from anycast_ctl.lab.net import daemons, netns
from anycast_ctl.lab.poll import wait_for

NETNS_DIR = Path("/run/netns")
FRR_RUN_DIR = Path("/run/frr")
MNT_DETACH = 2
# A corrupt state.json must not make cleanup delete anything outside these.
_REMOVABLE_ROOTS = (Path("/run"), Path("/tmp"))


@dataclass
class Leftovers:
    tag: str
    processes: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.namespaces or self.files or self.mounts)

    def __str__(self) -> str:
        if not self:
            return f"lab {self.tag}: nothing left"
        parts = [
            f"{kind}: {', '.join(items)}"
            for kind, items in (
                ("processes", self.processes),
                ("namespaces", self.namespaces),
                ("files", self.files),
                ("mounts", self.mounts),
            )
            if items
        ]
        return f"lab {self.tag} left behind " + "; ".join(parts)


@dataclass
class CleanupReport:
    tag: str
    terminated: list[int] = field(default_factory=list)  # ended after SIGTERM
    killed: list[int] = field(default_factory=list)  # needed SIGKILL
    namespaces: list[str] = field(default_factory=list)
    unmounted: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- what the tag owns
def _owned(names: Iterable[str], tag: str) -> list[str]:
    st = state.load(tag)
    mine = set(st.namespaces) if st else set()
    others: set[str] = set()
    for other in state.all_tags():
        other_state = state.load(other) if other != tag else None
        if other_state:
            others.update(other_state.namespaces)
    prefix = f"{tag}-"
    return sorted(n for n in names if n in mine or (n.startswith(prefix) and n not in others))


def tag_namespaces(tag: str) -> list[str]:
    return _owned(netns.list_namespaces(), tag)


def _ns_inodes(names: list[str]) -> set[tuple[int, int]]:
    found = set()
    for name in names:
        try:
            st = os.stat(NETNS_DIR / name)
            found.add((st.st_dev, st.st_ino))
        except OSError:
            pass
    return found


def _in_namespaces(pid: int, inodes: set[tuple[int, int]]) -> bool:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in inodes


def _protected_pids() -> set[int]:
    """Ourselves and our ancestors: a `lab down` run from inside the lab must not kill itself."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
            pid = int(raw[raw.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            break
    return pids


def lab_pids(tag: str) -> dict[int, int | None]:
    """pid -> start time of every live process that belongs to the tag (minus ourselves)."""
    inodes = _ns_inodes(tag_namespaces(tag))
    found: dict[int, int | None] = {}
    for pid in daemons.all_pids():
        tagged = daemons.environ_has(pid, state.ENV_TAG, tag)
        if (tagged or _in_namespaces(pid, inodes)) and daemons.is_running(pid):
            found[pid] = daemons.start_time(pid)
    st = state.load(tag)
    for rec in st.daemons if st else []:
        if daemons.is_running(rec.pid, rec.start_time):
            found[rec.pid] = rec.start_time
    for pid in _protected_pids():
        found.pop(pid, None)
    return found


def _lab_files(tag: str) -> list[Path]:
    st = state.load(tag)
    recorded = [Path(p) for p in (st.files if st else [])]
    frr = [FRR_RUN_DIR / n for n in _owned(_listdir(FRR_RUN_DIR), tag)]
    candidates = [*recorded, *frr, state.state_dir(tag)]
    return [p for p in dict.fromkeys(candidates) if p.exists() or p.is_symlink()]


def _lab_mounts(tag: str) -> list[str]:
    state_dir = str(state.state_dir(tag))
    netns_mounts = {str(NETNS_DIR / n): n for n in _netns_mount_names()}
    owned = set(_owned(netns_mounts.values(), tag))
    return [
        point
        for point in _mount_points()
        if netns_mounts.get(point) in owned
        or point == state_dir
        or point.startswith(state_dir + "/")
    ]


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _netns_mount_names() -> list[str]:
    prefix = str(NETNS_DIR) + "/"
    return [p[len(prefix) :] for p in _mount_points() if p.startswith(prefix)]


# ---------------------------------------------------------------- actions
def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _gone(targets: dict[int, int | None]) -> bool:
    return not any(daemons.is_running(pid, started) for pid, started in targets.items())


def _stop_processes(tag: str, timeout: float, report: CleanupReport) -> None:
    for _ in range(3):  # a dying parent may have spawned a last child; look again
        targets = lab_pids(tag)
        if not targets:
            return
        _signal_all(targets, signal.SIGTERM)
        _signal_all(targets, signal.SIGCONT)  # a SIGSTOPped (hung) process must see the TERM
        try:
            wait_for(partial(_gone, targets), timeout, what="lab processes to exit on SIGTERM")
            report.terminated.extend(targets)
        except TimeoutError:
            rest = {p: s for p, s in targets.items() if daemons.is_running(p, s)}
            report.terminated.extend(p for p in targets if p not in rest)
            _signal_all(rest, signal.SIGKILL)
            report.killed.extend(rest)
            wait_for(partial(_gone, rest), 5.0, what="lab processes to die on SIGKILL")


def _umount(point: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.umount2(point.encode(), MNT_DETACH)


def _remove(path: Path) -> bool:
    resolved = path.resolve()
    if len(resolved.parts) < 4 or not any(resolved.is_relative_to(r) for r in _REMOVABLE_ROOTS):
        return False  # never /run itself, /run/frr, or anything outside /run and /tmp
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return True


def cleanup(tag: str, timeout: float = 5.0) -> CleanupReport:
    """Stop the tag's processes (SIGTERM, bounded wait, SIGKILL), delete its namespaces,
    unmount and remove its files and state. Idempotent: a second run finds nothing."""
    state.check_name(tag, "tag")
    report = CleanupReport(tag=tag)
    _stop_processes(tag, timeout, report)
    for name in tag_namespaces(tag):
        if netns.delete_namespace(name):
            report.namespaces.append(name)
    for point in sorted(_lab_mounts(tag), key=len, reverse=True):
        _umount(point)
        report.unmounted.append(point)
    # Files last: the state dir says which namespaces and files are ours until the very end.
    for path in _lab_files(tag):
        if _remove(path):
            report.files.append(str(path))
    return report


def leftovers(tag: str) -> Leftovers:
    """What of the tag still exists; falsy when nothing does."""
    state.check_name(tag, "tag")
    return Leftovers(
        tag=tag,
        processes=[f"{pid} ({daemons.cmdline(pid)[:80]})" for pid in sorted(lab_pids(tag))],
        namespaces=tag_namespaces(tag),
        files=[str(p) for p in _lab_files(tag)],
        mounts=_lab_mounts(tag),
    )
