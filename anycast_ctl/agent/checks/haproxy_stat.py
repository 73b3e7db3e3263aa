"""HAProxy `show stat` CSV: parse it and judge a frontend and a backend (pure).

Which server states count as UP (able to take new traffic from HAProxy now):
- "UP", and "UP n/m" (failing checks but not yet at `fall`: HAProxy still sends it traffic);
- "no check" (no health checks configured: HAProxy always sends it traffic).
Not UP: "DOWN", "DOWN n/m" (passing checks but not yet at `rise`: no traffic yet), "NOLB",
"DRAIN", "MAINT" and its variants.
The frontend must be "OPEN"; `disable frontend` shows "PAUSED" in HAProxy 2.6, a stopped
one "STOP".
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass

from anycast_ctl.agent.checks.outcome import Outcome, one_line
from anycast_ctl.errors import UserError

FRONTEND, BACKEND, SERVER, LISTENER = 0, 1, 2, 3  # the `type` column
_SOURCE = "<haproxy show stat>"
_REQUIRED = ("pxname", "svname", "status", "type")
# HAProxy's own rule for proxy names; anything else could smuggle a second command past ";".
_PROXY_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


@dataclass(frozen=True)
class StatRow:
    proxy: str
    name: str  # svname: FRONTEND, BACKEND or the server's name
    kind: int  # FRONTEND, BACKEND, SERVER or LISTENER
    status: str


def valid_proxy_name(name: str) -> bool:
    return bool(_PROXY_NAME.match(name))


def stat_command(frontend: str, backend: str) -> bytes:
    """Ask only for the frontend's row and the backend's rows (types 1 and 2|4, all ids)."""
    if not (valid_proxy_name(frontend) and valid_proxy_name(backend)):
        raise ValueError("proxy names must be checked with valid_proxy_name first")
    return f"show stat {frontend} 1 -1; show stat {backend} 6 -1\n".encode("ascii")


def split_responses(text: str) -> list[str]:
    """One answer per command: HAProxy ends each with an empty line."""
    return [block.strip("\n") for block in text.split("\n\n") if block.strip()]


def _split(line: str, width: int) -> list[str]:
    """A CSV line's fields up to column `width` (the rest unsplit, or all of them when
    `width` is -1); plain `split` unless the line has a quoted field.

    HAProxy quotes only fields that need it (a check description with a comma); a full dump
    of a thousand proxies is thousands of lines a tick, and `str.split` with a bound is far
    cheaper than the csv module or splitting all ~100 columns.
    """
    if '"' in line:
        return next(csv.reader([line]), [])
    return line.split(",", width + 1) if width >= 0 else line.split(",")


@functools.lru_cache(maxsize=8)
def _picks(header: str) -> tuple[int, ...] | str:
    """The columns of `_REQUIRED` in a `# pxname,...` header line, or what it lacks. Cached:
    one HAProxy sends the same header every tick."""
    fields = _split(header, -1)
    columns = {name: i for i, name in enumerate([fields[0][2:], *fields[1:]])}
    missing = [name for name in _REQUIRED if name not in columns]
    if missing:
        return ", ".join(missing)
    return tuple(columns[name] for name in _REQUIRED)


def parse_stat_csv(text: str) -> list[StatRow]:
    """Rows of one or more `show stat` CSV answers; each starts with its `# pxname,...` header."""
    rows: list[StatRow] = []
    picks: tuple[int, ...] | None = None
    width = -1
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        if line.startswith("# "):
            found = _picks(line)
            if isinstance(found, str):
                raise UserError.single(_SOURCE, f"line {number}", f"header lacks {found}")
            picks, width = found, max(found)
            continue
        fields = _split(line, width)
        if picks is None:
            # An error message instead of CSV, e.g. "Unknown command" or "Permission denied".
            raise UserError.single(
                _SOURCE, f"line {number}", f"haproxy said: {one_line(','.join(fields))}"
            )
        if len(fields) <= width:
            raise UserError.single(_SOURCE, f"line {number}", f"only {len(fields)} fields")
        proxy, name, status, kind = (fields[i] for i in picks)
        if not kind.isdigit():
            raise UserError.single(_SOURCE, f"line {number}", f"type {kind!r} is not a number")
        rows.append(StatRow(proxy, name, int(kind), status))
    return rows


def rows_of_answer(answer: str) -> list[StatRow]:
    """A filtered `show stat <proxy> ...` answer; an unknown proxy yields no rows."""
    if answer.strip() == "No such proxy.":
        return []
    return parse_stat_csv(answer)


def server_is_up(status: str) -> bool:
    return status == "UP" or status.startswith("UP ") or status == "no check"


def assess(rows: list[StatRow], frontend: str, backend: str, min_servers_up: int) -> Outcome:
    front = next((r for r in rows if r.kind == FRONTEND and r.proxy == frontend), None)
    has_backend = any(r.kind == BACKEND and r.proxy == backend for r in rows)
    servers = [r for r in rows if r.kind == SERVER and r.proxy == backend]
    up = sum(server_is_up(r.status) for r in servers)
    problems = []
    if front is None:
        problems.append(f"frontend {frontend} not found")
    elif front.status != "OPEN":
        problems.append(f"frontend {frontend} is {front.status}")
    if not has_backend:
        problems.append(f"backend {backend} not found")
    elif up < min_servers_up:
        problems.append(f"{backend}: {up}/{len(servers)} servers UP, need {min_servers_up}")
    extra = {"servers_up": up, "servers_total": len(servers)}
    if problems:
        return Outcome.soft("; ".join(problems), **extra)
    return Outcome.ok(
        f"frontend {frontend} OPEN, {backend}: {up}/{len(servers)} servers UP", **extra
    )
