"""Just enough HTTP/1.1 for a health check: one GET, one response (pure).

Parsing problems raise UserError; `run_check` turns them into a soft result with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from anycast_ctl.errors import UserError

HEAD_CAP = 16 * 1024  # status line + headers
BODY_CAP = 64 * 1024  # body bytes kept for body_regex
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] ([1-9][0-9]{2})(?: [^\r\n]*)?$")
_SOURCE = "<http response>"


def _bad(what: str) -> UserError:
    return UserError.single(_SOURCE, "", what)


def build_request(host_header: str, path: str) -> bytes:
    # Connection: close lets the server end the body by closing, and keeps us from
    # holding idle connections on the service we check.
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        "User-Agent: anycast-ctl-check\r\n"
        "Accept: */*\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode("ascii")


def split_head(buffer: bytes) -> tuple[bytes, bytes] | None:
    """(head, start of body) once the blank line has arrived, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    return buffer[:end], buffer[end + 4 :]


@dataclass(frozen=True)
class ResponseHead:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        if not value.isdigit():
            raise _bad(f"bad Content-Length {value[:40]!r}")
        return int(value)

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()


def parse_head(head: bytes) -> ResponseHead:
    lines = head.split(b"\r\n")
    match = _STATUS_LINE.match(lines[0])
    if not match:
        raise _bad(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise _bad(f"bad header line {line[:60]!r}")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return ResponseHead(int(match.group(1)), headers)


def dechunk(raw: bytes) -> tuple[bytes, bool]:
    """Decode a chunked body as far as it has arrived: (data, saw the last chunk)."""
    out = bytearray()
    pos = 0
    while True:
        line_end = raw.find(b"\r\n", pos)
        if line_end < 0:
            return bytes(out), False
        size_text = raw[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _bad(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            return bytes(out), True
        start = line_end + 2
        out += raw[start : start + size]
        if start + size + 2 > len(raw):
            return bytes(out), False
        pos = start + size + 2


def body_complete(head: ResponseHead, raw: bytes) -> bool:
    """Whether `raw` holds the whole body; False means read on (until EOF or the cap)."""
    if head.chunked:
        return dechunk(raw)[1]
    length = head.content_length
    return length is not None and len(raw) >= length


def decode_body(head: ResponseHead, raw: bytes) -> str:
    if head.chunked:
        raw = dechunk(raw)[0]
    elif head.content_length is not None:
        raw = raw[: head.content_length]
    return raw[:BODY_CAP].decode("utf-8", errors="replace")
