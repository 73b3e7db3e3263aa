"""Read flows from CSV: header `src,dst,proto,sport,dport` and an optional `bytes` column.

Streamed: the file is read in blocks of about BLOCK_BYTES and each block becomes a
`CsvChunk` of numpy arrays, so memory does not grow with the file (like generated flows).
A block of plain rows (the common case) is parsed by `csvfast` with numpy, column by column;
any block it does not take whole (quotes, spaces, IPv6, a bad row...) is parsed again here
row by row by the exact reader, which names each bad row. Both give the same values, and
only the exact reader decides what is an error.

Row numbers are the ones a spreadsheet shows (the header is row 1). Every bad row is
reported as `UserError(source=FILE, where="row 12, field sport")`; up to `MAX_PROBLEMS`
problems are listed, so one systematic mistake does not print a million lines.
IPv4 and IPv6 rows may be mixed; each chunk holds one `CsvPart` per family with each flow's
row number and its position among the chunk's rows, so callers can restore input order.
"""

from __future__ import annotations

import csv
import gc
import io
import ipaddress
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

import numpy as np

from anycast_ctl.errors import Problem, UserError
from anycast_ctl.sim.csvfast import parse_block
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
BLOCK_BYTES = 1 << 20  # ~25k rows per chunk: bounded memory, few numpy passes per row
STDIN = "-"
# One parsed row: src and dst as integers, proto, sport, dport, bytes, line number, position.
Row: TypeAlias = tuple[int, int, int, int, int, float, int, int]
_MASK64 = (1 << 64) - 1
# The spellings the fast path takes; any other goes to the exact reader (which lowercases).
FAST_PROTOCOLS = {str(n): n for n in range(256)}
FAST_PROTOCOLS.update({k: v for name, v in PROTOCOLS.items() for k in (name, name.upper())})


@dataclass(frozen=True)
class CsvPart:
    flows: FlowArrays  # one address family
    rows: np.ndarray  # spreadsheet row number of each flow (header = row 1)
    bytes: np.ndarray | None  # float64, when the file has a bytes column
    positions: np.ndarray | None = None  # each flow's index among its chunk's rows


@dataclass(frozen=True)
class CsvChunk:
    """The rows of one block, in file order."""

    parts: tuple[CsvPart, ...]  # IPv4 first, then IPv6; only families present
    count: int  # rows in the chunk
    raw: bytes | None  # the rows exactly as read, one per line (the fast path's blocks)
    cells: list[list[str]] | None  # else each row's cells as the csv module reads them


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


# ---------------------------------------------------------------- opening and blocks
def open_flows(path: str | Path) -> tuple[str, BinaryIO]:
    """(source name, binary stream) of a flows file, or of stdin for '-'."""
    if str(path) == STDIN:
        return "<stdin>", sys.stdin.buffer
    source = str(path)
    try:
        return source, open(path, "rb")  # closed by iter_csv_chunks
    except FileNotFoundError:
        raise UserError.single(source, "", "cannot read: No such file or directory") from None
    except IsADirectoryError:
        raise UserError.single(source, "", "is a directory, not a file") from None
    except OSError as exc:
        raise UserError.single(source, "", f"cannot read: {exc.strerror or exc}") from None


def _blocks(source: str, stream: BinaryIO) -> Iterator[tuple[int, int, bytes]]:
    """(line number of its first line, byte offset, whole lines) for the whole stream."""
    line, offset, rest, first = 1, 0, b"", True
    while True:
        try:
            data = stream.read(BLOCK_BYTES)
        except OSError as exc:
            raise UserError.single(source, "", f"cannot read: {exc.strerror or exc}") from None
        if first:
            if data.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise UserError.single(source, "", "UTF-16 text: save the file as UTF-8 CSV")
            if data.startswith(b"\xef\xbb\xbf"):  # a spreadsheet's BOM is not part of "src"
                data, offset = data[3:], 3
            first = False
        if b"\x00" in data:
            raise UserError.single(
                source, "", "a binary file (it contains NUL bytes), not CSV text"
            )
        buffer = rest + data
        cut = buffer.rfind(b"\n") + 1 if data else len(buffer)
        whole, rest = buffer[:cut], buffer[cut:]
        if whole:
            yield line, offset, whole
            line += whole.count(b"\n")
            offset += len(whole)
        if not data:
            return


def _decode(source: str, offset: int, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError.single(
            source, "", f"not UTF-8 text (byte {offset + exc.start}: {exc.reason})"
        ) from None


def _rows(line: int, text: str) -> tuple[list[int], list[list[str]]]:
    """Line numbers and cells of a block's rows, as csv.reader reads and counts them."""
    reader = csv.reader(io.StringIO(text, newline=""))
    numbers, rows = [], []
    for row in reader:
        if row and any(cell.strip() for cell in row):  # blank lines are harmless
            numbers.append(line + reader.line_num - 1)
            rows.append(row)
    return numbers, rows


# ---------------------------------------------------------------- the reader
def iter_csv_chunks(
    source: str, stream: BinaryIO, header_out: list[str] | None = None
) -> Iterator[CsvChunk]:
    """Chunks in file order. A bad row raises UserError (with up to MAX_PROBLEMS problems)
    once the rest of the file was checked, after the chunks before it were yielded.
    `header_out` receives the header's cells as written."""
    with stream:
        blocks = _blocks(source, stream)
        first = next(blocks, None)
        if first is None:
            _check_header(source, [])
            return
        line, offset, data = first
        head, _, body = data.partition(b"\n")
        written = next(csv.reader([_decode(source, 0, head)]), [])
        header = [h.strip().lower() for h in written]
        _check_header(source, header)
        if header_out is not None:
            header_out.extend(written)
        col = {name: header.index(name) for name in REQUIRED + OPTIONAL if name in header}
        problems: list[Problem] = []
        pending = [(line + 1, offset + len(head) + 1, body)] if body else []
        for line, offset, data in _chain(pending, blocks):
            chunk = None if problems else _fast(data, line, col, len(header))
            if chunk is None:
                # Millions of small lists and strings, none in a cycle: without the cyclic
                # GC scanning them again and again the exact reader runs 3x faster.
                gc.disable()
                try:
                    numbers, rows = _rows(line, _decode(source, offset, data))
                    chunk = _exact(source, rows, numbers, col, len(header), problems)
                finally:
                    gc.enable()
            if problems:
                if len(problems) >= MAX_PROBLEMS:
                    break
                continue
            if chunk.count:
                yield chunk
        if problems:
            raise UserError(problems[:MAX_PROBLEMS])


def _chain(
    first: list[tuple[int, int, bytes]], rest: Iterator[tuple[int, int, bytes]]
) -> Iterator[tuple[int, int, bytes]]:
    yield from first
    yield from rest


def read_flows_csv(path: str | Path, stream: BinaryIO | None = None) -> CsvFlows:
    """Every flow of the file at once (small files and tests; the simulator streams).
    `stream`: read these bytes instead of `path`, which then only names them."""
    if stream is None:
        source, stream = open_flows(path)
    else:
        source = str(path)
    by_family: dict[int, list[CsvPart]] = {4: [], 6: []}
    for chunk in iter_csv_chunks(source, stream):
        for part in chunk.parts:
            by_family[part.flows.family].append(part)
    parts = tuple(_concat(by_family[f]) for f in (4, 6) if by_family[f])
    return CsvFlows(parts, sum(len(p.rows) for p in parts))


def _concat(parts: list[CsvPart]) -> CsvPart:
    if len(parts) == 1:
        return parts[0]
    flows = FlowArrays(
        np.concatenate([p.flows.src for p in parts]),
        np.concatenate([p.flows.dst for p in parts]),
        np.concatenate([p.flows.proto for p in parts]),
        np.concatenate([p.flows.sport for p in parts]),
        np.concatenate([p.flows.dport for p in parts]),
        parts[0].flows.family,
    )
    byte_parts = [p.bytes for p in parts if p.bytes is not None]
    byte_counts = np.concatenate(byte_parts) if len(byte_parts) == len(parts) else None
    return CsvPart(flows, np.concatenate([p.rows for p in parts]), byte_counts)


def _fast(data: bytes, line: int, col: dict[str, int], width: int) -> CsvChunk | None:
    if b"\r" in data:  # a spreadsheet's CRLF line ends: the csv module drops the CR too
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            return None
    columns = parse_block(data, width, col, FAST_PROTOCOLS)
    if columns is None:
        return None
    n = len(columns.src)
    flows = FlowArrays(columns.src, columns.dst, columns.proto, columns.sport, columns.dport, 4)
    rows = np.arange(line, line + n, dtype=np.int64)
    part = CsvPart(flows, rows, columns.bytes, np.arange(n, dtype=np.int64))
    return CsvChunk((part,), n, data, None)


def _exact(
    source: str,
    rows: list[list[str]],
    numbers: list[int],
    col: dict[str, int],
    width: int,
    problems: list[Problem],
) -> CsvChunk:
    """Row by row, naming every bad row and field: the reference the fast path matches."""
    parsed: dict[int, list[Row]] = {4: [], 6: []}
    for position, (line, row) in enumerate(zip(numbers, rows, strict=True)):
        if len(problems) >= MAX_PROBLEMS:
            break
        values = _parse_row(source, line, row, col, width, problems)
        if values is not None:
            parsed[values[0]].append((*values[1:], position))
    parts = tuple(_part(parsed[f], f, "bytes" in col) for f in (4, 6) if parsed[f])
    return CsvChunk(parts, len(rows), None, rows)


def _check_header(source: str, header: list[str]) -> None:
    expected = ",".join(REQUIRED) + "[,bytes]"
    if not header or header == [""]:
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
    return CsvPart(
        flows,
        np.array([r[6] for r in rows], dtype=np.int64),
        byte_counts,
        np.array([r[7] for r in rows], dtype=np.int64),
    )
