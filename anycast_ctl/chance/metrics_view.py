"""What the second chance shows in the agent's metrics besides its nft counters (pure data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChanceView:
    peers: dict[str, str]  # each configured peer: "live", "drained" or "down"
    loaded: bool  # the table is in the kernel
    forwarding: bool  # loaded, and this node not "gone" (stopping, or past its drain timeout)
    generation: int  # tables applied since the agent started
    age: float | None  # seconds since the last apply; None before the first


def peer_up(state: str) -> bool:
    """A peer is up while it is a forwarding target: heard lately, live or drained."""
    return state in ("live", "drained")
