"""The second chance's nft counters from one `nft -j list counters` (pure parsing).

    counts = parse_counters(text)
    counts.forwarded        # {"lb1": Count(packets, bytes), ...}: sent to each peer, any level
    counts.arrived          # Count: packets that came in over the overlay from a peer
    counts.forwarded_total  # Count: all peers together

The IPv4 and IPv6 tables' counters of the same name are added up. Counters of other tables
(any other ruleset on the node) are ignored. The ruleset is replaced as a whole at each table
update, so its counters start again from 0 then (docs/second-chance.md, "Metrics").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from anycast_ctl.render.chance import ARRIVED, FAMILY, FORWARDED_PREFIX, TABLE


@dataclass(frozen=True)
class Count:
    packets: int = 0
    bytes: int = 0

    def __add__(self, other: Count) -> Count:
        return Count(self.packets + other.packets, self.bytes + other.bytes)


@dataclass(frozen=True)
class ChanceCounters:
    present: bool = False  # a table of ours is loaded (it has at least one counter)
    arrived: Count = Count()
    forwarded: dict[str, Count] = field(default_factory=dict)

    @property
    def forwarded_total(self) -> Count:
        return sum(self.forwarded.values(), Count())


class CountersFormatError(ValueError):
    """nft answered something that is not its JSON listing of counters."""


def parse_counters(text: str) -> ChanceCounters:
    try:
        items = json.loads(text).get("nftables", [])
    except (json.JSONDecodeError, AttributeError):
        raise CountersFormatError("nft -j list counters: not a JSON object") from None
    families = set(FAMILY.values())
    arrived, forwarded, present = Count(), dict[str, Count](), False
    for item in items if isinstance(items, list) else []:
        counter = item.get("counter") if isinstance(item, dict) else None
        if not isinstance(counter, dict):
            continue
        if counter.get("table") != TABLE or counter.get("family") not in families:
            continue
        try:
            name = str(counter["name"])
            count = Count(int(counter["packets"]), int(counter["bytes"]))
        except (KeyError, TypeError, ValueError):
            raise CountersFormatError(f"nft counter without packets/bytes: {counter}") from None
        present = True
        if name == ARRIVED:
            arrived += count
        elif name.startswith(FORWARDED_PREFIX):
            peer = name.removeprefix(FORWARDED_PREFIX)
            forwarded[peer] = forwarded.get(peer, Count()) + count
    return ChanceCounters(present, arrived, forwarded)
