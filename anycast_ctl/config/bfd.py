"""BFD (RFC 5880) on the router-LB BGP sessions: the topology's `bfd:` setting (the lab's and
the routers' timers) and the node config's (what an LB node's bfdd runs in production).

BFD only ties a BGP session's liveness to a fast hello: when hellos stop for
`interval_ms x multiplier`, the router closes the session and drops its routes at once
instead of waiting for the hold time. It never announces or keeps anything: a withdrawn or
drained VIP is withdrawn over BGP whatever BFD says (docs/bfd.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from anycast_ctl.config.common import StrictModel

# FRR's ranges for transmit-interval / receive-interval (ms) and detect-multiplier.
BfdInterval = Annotated[int, Field(ge=10, le=60000)]
BfdMultiplier = Annotated[int, Field(ge=2, le=255)]


class BfdTimers(StrictModel):
    enabled: bool = True
    # Desired minimum transmit interval and required minimum receive interval, both.
    interval_ms: BfdInterval = 100
    # Hellos missed in a row before the session is down: detection takes interval x multiplier.
    multiplier: BfdMultiplier = 3

    @property
    def detection_ms(self) -> int:
        return self.interval_ms * self.multiplier


class TopologyBfd(BfdTimers):
    """`bfd:` of a topology: every router ties its LB sessions to BFD with these timers, and
    the rendered node configs give the LB nodes' bfdd the same ones. The lab's default,
    100 ms x 3, takes a frozen node out of every FIB in about 300 ms plus the FIB update."""


class NodeBfd(BfdTimers):
    """`bfd:` of a node config: the timers and mode of the LB node's bfdd, one session per
    BGP neighbor (its address, from local_address). Production default 300 ms x 3 (FRR's and
    most routers' default): 0.9 s to detect, with room for a busy host to miss a hello."""

    interval_ms: BfdInterval = 300
    # RFC 5883 multihop sessions (UDP 4784) instead of single-hop (RFC 5881, UDP 3784). FRR 8.4
    # treats an eBGP peer with `ttl-security hops` as multihop and opens its BFD session so;
    # the other side must match (docs/bfd.md). Routers of other vendors use single-hop for a
    # directly connected eBGP peer.
    multihop: bool = False
