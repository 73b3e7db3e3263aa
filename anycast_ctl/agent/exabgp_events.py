"""What ExaBGP writes to its API process, parsed (pure): acks, peer state changes, shutdown.

Both versions and both encoders (text and JSON); see docs/exabgp.md for the captured lines.
`parse_line` never raises: anything it does not know becomes `Unknown`.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Ack:
    ok: bool  # "done" or "error": one per command while exabgp.api.ack is on


@dataclass(frozen=True)
class Shutdown:
    """ExaBGP is stopping; its next act is to terminate us."""


@dataclass(frozen=True)
class PeerState:
    address: str
    up: bool  # True only once the session is established


@dataclass(frozen=True)
class Unknown:
    line: str


Event = Ack | Shutdown | PeerState | Unknown

_ANSWERS = {"done": True, "error": False}


def _peer_address(text: object) -> str | None:
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        return None


def _parse_json(line: str) -> Event:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return Unknown(line)
    if not isinstance(data, dict):
        return Unknown(line)
    answer = data.get("answer")  # newer ExaBGP can send its acks as JSON
    if answer in _ANSWERS:
        return Ack(_ANSWERS[answer])
    if (
        answer == "shutdown"
        or data.get("type") == "notification"
        and data.get("notification") == "shutdown"
    ):
        return Shutdown()
    if data.get("type") == "state":
        neighbor = data.get("neighbor")
        if isinstance(neighbor, dict):
            address = neighbor.get("address")
            peer = _peer_address(address.get("peer")) if isinstance(address, dict) else None
            state = neighbor.get("state")
            if peer and isinstance(state, str):
                return PeerState(peer, state == "up")
    return Unknown(line)


def _parse_text(line: str) -> Event:
    words = line.split()
    if words[0] == "shutdown":  # "shutdown PID PPID" from the text encoder
        return Shutdown()
    # "neighbor 10.0.0.1 up" / "... connected" / "... down - reason"
    if len(words) >= 3 and words[0] == "neighbor" and words[2] in ("up", "down", "connected"):
        peer = _peer_address(words[1])
        if peer:
            return PeerState(peer, words[2] == "up")
    return Unknown(line)


def parse_line(line: str) -> Event:
    """One line ExaBGP wrote to our stdin -> an event. Never raises; junk becomes `Unknown`."""
    if not isinstance(line, str):
        return Unknown(repr(line))
    line = line.rstrip("\r\n")
    text = line.strip()
    if text in _ANSWERS:
        return Ack(_ANSWERS[text])
    if not text:
        return Unknown(line)
    event = _parse_json(text) if text.startswith("{") else _parse_text(text)
    return Unknown(line) if isinstance(event, Unknown) else event
