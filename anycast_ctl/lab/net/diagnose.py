"""What a person, or an experiment, needs to see of a lab's processes: log tails that show the
cause of a failure, and the processes a daemon started (the agent is ExaBGP's child)."""

from __future__ import annotations

import re
from pathlib import Path

from anycast_ctl.lab.net import daemons

_NOISE = re.compile(r"^\s*$|statistics for ")  # blank lines; ExaBGP's per-message counters
_ALARM = re.compile(r"error|critical|fatal|too many death|exited|denied", re.IGNORECASE)


def readable_tail(path: Path, lines: int) -> str:
    """What a person needs from a log in an error message: its first distinct error-looking
    lines (the cause often scrolls out before the end: ExaBGP prints a long crash banner),
    then its last `lines` lines that say something."""
    try:
        text = [
            line
            for line in path.read_text(errors="replace").splitlines()
            if not _NOISE.search(line)
        ]
    except FileNotFoundError:
        return "(no log)"
    alarms = list(dict.fromkeys(line.strip() for line in text[:-lines] if _ALARM.search(line)))[:8]
    head = ["first error lines:", *alarms, "last lines:"] if alarms else []
    return "\n".join(head + text[-lines:]) or "(empty)"


def descendants(root: int) -> list[int]:
    """Every live descendant of `root` (children first), from /proc's parent pids."""
    children: dict[int, list[int]] = {}
    for pid in daemons.all_pids():
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
            ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
