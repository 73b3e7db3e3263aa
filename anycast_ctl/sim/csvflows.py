"""Read flows from CSV: header `src,dst,proto,sport,dport` and an optional `bytes` column.

Row numbers are the ones a spreadsheet shows (the header is row 1). Every bad row is
reported as `UserError(source=FILE, where="row 12, field sport")`; up to `MAX_PROBLEMS`
problems are listed, so one systematic mistake does not print a million lines.
IPv4 and IPv6 rows may be mixed; they come back as one `CsvPart` per family with each
flow's row number, so callers can write results back in the input's order.
"""

from __future__ import annotations

import csv
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeAlias

import numpy as np

from anycast_ctl.errors import Problem, UserError
from anycast_ctl.sim.flowarrays import FlowArrays

REQUIRED = ("src", "dst", "proto", "sport", "dport")
OPTIONAL = ("bytes",)
PROTOCOLS = {
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "sctp": 132,
    "udplite": 136,
}
MAX_PROBLEMS = 20
# One parsed row: src and dst as integers, proto, sport, dport, bytes, its line number.
Row: TypeAlias = tuple[int, int, int, int, int, float, int]
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class CsvPart:
    flows: FlowArrays  # one address family
    rows: np.ndarray  # spreadsheet row number of each flow (header = row 1)
    bytes: np.ndarray | None  # float64, when the file has a bytes column


@dataclass(frozen=True)
class CsvFlows:
    parts: tuple[CsvPart, ...]  # IPv4 first, then IPv6; only families present
    total: int


def parse_proto(text: str) -> int:
    value = text.strip().lower()
    if value in PROTOCOLS:
        return PROTOCOLS[value]
    number = int(value)  # ValueError for anything else
    if not 0 <= number <= 255:
        raise ValueError("out of range")
    return number


def _number(text: str, low: int, high: int) -> int:
    value = int(text.strip())
    if not low <= value <= high:
        raise ValueError("out of range")
    return value


def read_flows_csv(path: str | Path, stream: TextIO | None = None) -> CsvFlows:
    """Read the flows of `path`.

    `stream`: read this open text (closed when done) instead; `path` then only names it
    (e.g. stdin).
    """
    source = str(path)
    try:
        if stream is None:
            _sniff(source, Path(path))
        # Either way the handle is closed by the `with handle:` below.
        handle = stream if stream is not None else open(path, newline="", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise UserError.single(source, "", f"cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        _check_header(source, header)
        col = {name: header.index(name) for name in REQUIRED + OPTIONAL if name in header}
        rows: dict[int, list[Row]] = {4: [], 6: []}
        problems: list[Problem] = []
        try:
            for row in reader:
                if len(problems) >= MAX_PROBLEMS:
                    break
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank lines are harmless
                parsed = _parse_row(source, reader.line_num, row, col, len(header), problems)
                if parsed is not None:
                    rows[parsed[0]].append(parsed[1:])
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.append(Problem(source, f"row {reader.line_num}", f"unreadable CSV: {exc}"))
    if problems:
        raise UserError(problems)
    parts = tuple(_part(rows[f], f, "bytes" in col) for f in (4, 6) if rows[f])
    return CsvFlows(parts, sum(len(p.rows) for p in parts))


def _sniff(source: str, path: Path) -> None:
    """Say what a file is when it is not UTF-8 text, before a codec error would."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError.single(source, "", "UTF-16 text: save the file as UTF-8 CSV")
    if b"\x00" in head:
        raise UserError.single(source, "", "a binary file (it contains NUL bytes), not CSV text")


def _check_header(source: str, header: list[str]) -> None:
    expected = ",".join(REQUIRED) + "[,bytes]"
    if not header:
        raise UserError.single(source, "row 1", f"empty file: expected the header {expected}")
    problems = [
        Problem(source, "row 1", f"missing column {name!r} (header: {expected})")
        for name in REQUIRED
        if name not in header
    ]
    for name in header:
        if name not in REQUIRED + OPTIONAL:
            problems.append(
                Problem(source, "row 1", f"unknown column {name!r} (header: {expected})")
            )
        elif header.count(name) > 1:
            problems.append(Problem(source, "row 1", f"column {name!r} appears twice"))
    if problems:
        raise UserError(list(dict.fromkeys(problems)))


def _parse_row(
    source: str,
    line: int,
    row: list[str],
    col: dict[str, int],
    width: int,
    problems: list[Problem],
) -> tuple[int, int, int, int, int, int, float, int] | None:
    """(IP version, *Row) of a CSV row, or None after adding its problems."""
    where = f"row {line}"
    if len(row) != width:
        problems.append(Problem(source, where, f"{len(row)} fields, the header has {width}"))
        return None
    bad = len(problems)
    values: dict[str, Any] = {}  # the converters' results: addresses, ints, a float
    for name, convert, what in (
        ("src", lambda t: ipaddress.ip_address(t.strip()), "an IP address"),
        ("dst", lambda t: ipaddress.ip_address(t.strip()), "an IP address"),
        ("proto", parse_proto, "a protocol number 0-255 or a name (tcp, udp, ...)"),
        ("sport", lambda t: _number(t, 0, 65535), "a port 0-65535"),
        ("dport", lambda t: _number(t, 0, 65535), "a port 0-65535"),
        ("bytes", lambda t: _bytes(t), "a non-negative number"),
    ):
        if name not in col:
            continue
        text = row[col[name]]
        try:
            values[name] = convert(text)
        except ValueError:
            problems.append(Problem(source, f"{where}, field {name}", f"{text!r} is not {what}"))
    if len(problems) > bad:
        return None
    if values["src"].version != values["dst"].version:
        problems.append(
            Problem(
                source,
                f"{where}, field dst",
                f"IPv{values['dst'].version} destination for an IPv{values['src'].version} source",
            )
        )
        return None
    return (
        values["src"].version,
        int(values["src"]),
        int(values["dst"]),
        values["proto"],
        values["sport"],
        values["dport"],
        values.get("bytes", 1.0),
        line,
    )


def _bytes(text: str) -> float:
    value = float(text.strip())
    if not value >= 0 or value == float("inf"):
        raise ValueError("negative or not finite")
    return value


def _part(rows: list[Row], family: int, has_bytes: bool) -> CsvPart:
    src = [r[0] for r in rows]
    dst = [r[1] for r in rows]
    if family == 4:
        src_a, dst_a = np.array(src, dtype=np.uint32), np.array(dst, dtype=np.uint32)
    else:
        src_a = np.array([[a >> 64, a & _MASK64] for a in src], dtype=np.uint64)
        dst_a = np.array([[a >> 64, a & _MASK64] for a in dst], dtype=np.uint64)
    flows = FlowArrays(
        src_a,
        dst_a,
        np.array([r[2] for r in rows]),
        np.array([r[3] for r in rows]),
        np.array([r[4] for r in rows]),
        family,
    )
    byte_counts = np.array([r[5] for r in rows], dtype=np.float64) if has_bytes else None
    return CsvPart(flows, np.array([r[6] for r in rows], dtype=np.int64), byte_counts)
