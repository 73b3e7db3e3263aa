"""Vectorized parsing of plain CSV flow rows with numpy (pure; no Python work per row).

`parse_block` takes a block of whole ASCII lines (bytes ending in a newline) and returns the
flows' columns, or None as soon as anything is not plain: a row with a different number of
fields, a blank line, an IPv6 address, a space, a leading zero in an IPv4 octet, a number out
of range, an unknown protocol name. The caller then parses the block with the exact,
row-by-row reader, which names each bad row; so this path never decides what is an error, it
only takes the rows it is sure of, with the values the exact reader would give them.

Everything works on the block's bytes and the offsets of its fields: character classes are
counted with prefix sums, digits are gathered right-aligned (a port has at most 5, an IPv4
octet at most 3), so the cost is a few dozen numpy passes per block, whatever its rows hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

COMMA, NEWLINE, DOT, ZERO, NINE = 44, 10, 46, 48, 57


@dataclass(frozen=True)
class Columns:
    src: np.ndarray  # uint32
    dst: np.ndarray  # uint32
    proto: np.ndarray  # uint8
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16
    bytes: np.ndarray | None  # float64


class _Block:
    """A block's bytes and where its dots are; fields are read by gathering their bytes."""

    def __init__(self, buf: np.ndarray):
        self.buf = buf
        self.dot_at = np.flatnonzero(buf == DOT)

    def digits(self, starts: np.ndarray, ends: np.ndarray, most: int) -> np.ndarray | None:
        """Decimal value of fields of 1..`most` digits (right-aligned gather); None if a
        field is empty, longer, or holds anything but digits."""
        lengths = ends - starts
        if lengths.min() < 1 or lengths.max() > most:
            return None
        value = np.zeros(len(starts), np.int32)
        scale = 1
        for k in range(1, most + 1):
            at = ends - k
            present = at >= starts
            digit = self.buf[np.where(present, at, 0)] - np.uint8(ZERO)  # wraps below '0'
            digit[~present] = 0
            if (digit > 9).any():
                return None
            value += digit.astype(np.int32) * scale
            scale *= 10
        return value


def _decimal(
    block: _Block, starts: np.ndarray, ends: np.ndarray, most: int, high: int
) -> np.ndarray | None:
    """Unsigned decimals as int() reads them (leading zeros allowed) in 0..high."""
    value = block.digits(starts, ends, most)
    return None if value is None or value.max() > high else value


def _ipv4(block: _Block, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """Dotted quads exactly as ipaddress reads them: four 0..255 octets, no leading zeros."""
    first = np.searchsorted(block.dot_at, starts)
    if ((np.searchsorted(block.dot_at, ends) - first) != 3).any():
        return None  # not three dots inside the field
    dots = block.dot_at[first[:, None] + np.arange(3)[None, :]]
    octet_starts = np.column_stack((starts, dots + 1)).ravel()
    octet_ends = np.column_stack((dots, ends)).ravel()
    value = block.digits(octet_starts, octet_ends, 3)
    if value is None or value.max() > 255:
        return None
    leading = (block.buf[octet_starts] == ZERO) & (octet_ends - octet_starts > 1)
    if leading.any():
        return None  # "010": ipaddress refuses leading zeros (they once meant octal)
    value = value.astype(np.uint32).reshape(-1, 4)
    return (value[:, 0] << 24) | (value[:, 1] << 16) | (value[:, 2] << 8) | value[:, 3]


def _names(
    block: _Block, starts: np.ndarray, ends: np.ndarray, table: Mapping[str, int]
) -> np.ndarray | None:
    """Values looked up by exact spelling (protocol names and numbers, at most 8 characters)."""
    lengths = ends - starts
    if lengths.min() < 1 or lengths.max() > 8:
        return None
    key = np.zeros(len(starts), np.uint64)
    for k in range(8):
        at = starts + k
        byte = block.buf[np.minimum(at, block.buf.size - 1)].astype(np.uint64)
        key |= np.where(at < ends, byte, 0) << np.uint64(8 * k)
    unique, inverse = np.unique(key, return_inverse=True)
    try:
        spelled = [int(u).to_bytes(8, "little").rstrip(b"\0").decode("ascii") for u in unique]
        values = np.array([table[s] for s in spelled], np.int64)
    except (KeyError, UnicodeDecodeError):
        return None
    return values[inverse.ravel()]


def _floats(block: _Block, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    lengths = ends - starts
    if lengths.min() < 1 or lengths.max() > 24:
        return None
    index = np.minimum(starts[:, None] + np.arange(24)[None, :], block.buf.size - 1)
    chars = np.where(np.arange(24)[None, :] < lengths[:, None], block.buf[index], 0)
    text = np.ascontiguousarray(chars.astype(np.uint8)).view("S24").ravel()
    try:
        values = text.astype(np.float64)
    except ValueError:
        return None
    if not (np.isfinite(values).all() and (values >= 0).all()):
        return None
    return values


def parse_block(
    data: bytes, width: int, col: Mapping[str, int], protocols: Mapping[str, int]
) -> Columns | None:
    buf = np.frombuffer(data, np.uint8)
    if not buf.size or buf[-1] != NEWLINE or buf.max() >= 0x80:
        return None
    seps = np.flatnonzero((buf == COMMA) | (buf == NEWLINE))
    if seps.size % width:
        return None
    ends = seps.reshape(-1, width)
    shape = np.zeros(width, bool)
    shape[-1] = True
    if not ((buf[ends] == NEWLINE) == shape).all():
        return None  # a row with another number of fields, or a blank line
    starts = np.empty_like(ends)
    starts.flat[0] = 0
    starts.flat[1:] = seps[:-1] + 1
    block = _Block(buf)

    def column(name: str) -> tuple[np.ndarray, np.ndarray]:
        return starts[:, col[name]], ends[:, col[name]]

    src = _ipv4(block, *column("src"))
    dst = None if src is None else _ipv4(block, *column("dst"))
    proto = None if dst is None else _names(block, *column("proto"), protocols)
    sport = None if proto is None else _decimal(block, *column("sport"), 5, 65535)
    dport = None if sport is None else _decimal(block, *column("dport"), 5, 65535)
    if src is None or dst is None or proto is None or sport is None or dport is None:
        return None
    byte_counts = None
    if "bytes" in col:
        byte_counts = _floats(block, *column("bytes"))
        if byte_counts is None:
            return None
    return Columns(
        src,
        dst,
        proto.astype(np.uint8),
        sport.astype(np.uint16),
        dport.astype(np.uint16),
        byte_counts,
    )
