"""The second-chance plan of this node from what the agent knows (pure).

Inputs: the node config's `second_chance`, each peer's state (chance/peers.py), and the
likely previous owners of the flows this node gains (chance/likely.py). Only live or
drained peers are targets: a node that is down is never forwarded to.
"""

from __future__ import annotations

from anycast_ctl.config.node_chance import SecondChance
from anycast_ctl.render.chance import ChancePlan, Peer
from anycast_ctl.sim.chain import fallback_chain


def serving(states: dict[str, str]) -> frozenset[str]:
    """Peers that hold connections: forwarding targets."""
    return frozenset(name for name, state in states.items() if state in ("live", "drained"))


def announced_set(node: str, own_live: bool, states: dict[str, str]) -> frozenset[str]:
    """The LB nodes in the routers' ECMP sets, as far as this node knows."""
    live = {name for name, state in states.items() if state == "live"}
    return frozenset(live | ({node} if own_live else set()))


def plan(
    cfg: SecondChance, node: str, states: dict[str, str], likely: tuple[str, ...] = ()
) -> ChancePlan:
    assert cfg.index is not None and cfg.underlay is not None  # validated when enabled
    targets = serving(states)
    peers = tuple(Peer(p.name, p.index, p.underlay) for p in cfg.peers if p.name in targets)
    order = sorted([(cfg.index, node), *((p.index, p.name) for p in cfg.peers)])
    lbs = tuple(name for _, name in order)
    chain = fallback_chain(node, lbs, targets, cfg.hop_limit, likely)
    return ChancePlan(
        node,
        cfg.index,
        cfg.underlay,
        peers,
        tuple((v.address, v.port) for v in cfg.vips),
        (),
        chain,
        cfg.hop_limit,
        cfg.overlay_mtu,
    )
