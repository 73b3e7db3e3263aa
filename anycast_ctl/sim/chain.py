"""Second chance, the part a running agent needs (pure, no numpy): a flow's key, a forwarding
entry, and whom a node asks for a flow it has no entry for.

The predictions that fill the entries (`sim/owners.py`) need numpy and the topology; the agent
loads them in the background, so its start-up pays only for this module.
"""

from __future__ import annotations

from dataclasses import dataclass

HOP_LIMIT_MAX = 3  # a forwarded packet crosses at most this many LB nodes after the first

FlowKey = tuple[str, int, str, int]  # source address, source port, VIP, VIP port (TCP)


@dataclass(frozen=True)
class ForwardEntry:
    flow: FlowKey
    owner: str  # the LB node that holds the flow's connection


def fallback_chain(
    node: str,
    lbs: tuple[str, ...],
    alive: frozenset[str],
    hop_limit: int,
    likely: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """Whom `node` asks, in order, for a flow it has no entry for.

    First the `likely` previous owners (`owner_candidates`, where the hash is predictable),
    then the nodes after `node` in the topology's order, wrapping around; only live nodes,
    each once, at most `hop_limit` of them. The rendering counts hops on the wire, so a
    packet crosses at most `hop_limit` nodes after the first whatever the chains say.
    """
    if not 1 <= hop_limit <= HOP_LIMIT_MAX:
        raise ValueError(f"hop_limit must be within 1..{HOP_LIMIT_MAX}, not {hop_limit}")
    if node not in lbs:
        raise ValueError(f"{node!r} is not one of the LB nodes ({', '.join(lbs)})")
    start = lbs.index(node)
    ring = [lbs[(start + k) % len(lbs)] for k in range(1, len(lbs))]
    order = dict.fromkeys(lb for lb in (*likely, *ring) if lb in alive and lb != node)
    return tuple(order)[:hop_limit]
