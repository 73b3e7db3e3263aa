"""Who among the other LB nodes is live, drained or down: the agents' heartbeats (pure).

Every agent sends each peer, over the underlay, a small UDP datagram every `interval`:
its name, its state ("live": announcing; "drained": withdrawn but still holding its
connections, its overlay up; "gone": stopping, or past its drain timeout) and a timestamp,
with an HMAC-SHA256 when a key is configured. A peer not heard from for `dead_after` is down.

A forwarding target must be live or drained; only live nodes are in the routers' ECMP sets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field

STATES = ("live", "drained", "gone")
MAX_DATAGRAM = 512


@dataclass(frozen=True)
class Beat:
    node: str
    state: str
    sent_at: float  # the sender's wall clock


def encode(node: str, state: str, sent_at: float, key: str | None) -> bytes:
    body = json.dumps({"n": node, "s": state, "t": round(sent_at, 6)}, separators=(",", ":"))
    mac = hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest() if key else ""
    return f"{body}\n{mac}".encode()


def decode(data: bytes, key: str | None, now: float, max_skew: float) -> Beat | None:
    """The beat, or None for anything unsigned (when a key is set), forged, stale or malformed."""
    if len(data) > MAX_DATAGRAM:
        return None
    body, sep, mac = data.partition(b"\n")
    if not sep:
        return None
    if key is not None:
        want = hmac.new(key.encode(), body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(want, mac):
            return None
    try:
        fields = json.loads(body)
        beat = Beat(str(fields["n"]), str(fields["s"]), float(fields["t"]))
    except (ValueError, KeyError, TypeError):
        return None
    if beat.state not in STATES or abs(now - beat.sent_at) > max_skew:
        return None
    return beat


@dataclass
class PeerTable:
    """Last beat heard from each peer, checked against the peer list and its address."""

    addresses: dict[str, str]  # peer name -> its underlay address
    dead_after: float
    heard: dict[str, tuple[Beat, float]] = field(default_factory=dict)  # name -> (beat, mono)

    def hear(self, beat: Beat, source: str, mono: float) -> bool:
        """Take a beat from `source`; False if it is not that peer's, or older than the last."""
        if self.addresses.get(beat.node) != source:
            return False
        last = self.heard.get(beat.node)
        if last is not None and beat.sent_at <= last[0].sent_at:
            return False  # a replay, or reordered: never step back
        self.heard[beat.node] = (beat, mono)
        return True

    def states(self, mono: float) -> dict[str, str]:
        """Each peer: live, drained or down (not heard lately, gone, or never heard)."""
        out = {}
        for name in self.addresses:
            last = self.heard.get(name)
            fresh = last is not None and mono - last[1] <= self.dead_after
            state = last[0].state if last is not None and fresh else "down"
            out[name] = "down" if state == "gone" else state
        return out
