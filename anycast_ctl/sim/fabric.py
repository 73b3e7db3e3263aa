"""The forwarding view of a topology, and the events that change it.

A `Fabric` is what the routers' FIBs would hold once BGP has converged: for each router, its
next hops toward the LB nodes (in the router's order), which LB announces which VIP, and each
router's hashing. With eBGP multipath over a layered graph every downstream path has the same
length, so a router's ECMP set for a VIP is every next hop that still leads to an LB
announcing it. Events (an LB withdraws, an LB is added, a router or a link fails) map one
Fabric to another; nothing here hashes a flow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from anycast_ctl.config.topology import Algorithm, Hashing, Topology


@dataclass(frozen=True)
class Event:
    kind: str  # withdraw | add | router | link
    target: str  # the LB, the new LB, the router, or "A-B" for a link
    ends: tuple[str, str] = ("", "")  # a link's two nodes

    @property
    def label(self) -> str:
        return {
            "withdraw": f"withdraw {self.target}",
            "add": f"add {self.target}",
            "router": f"router {self.target} fails",
            "link": f"link {self.target} fails",
        }[self.kind]


@dataclass(frozen=True)
class Fabric:
    topology: Topology
    routers: tuple[str, ...]  # tier by tier, file order inside a tier
    lbs: tuple[str, ...]
    nexthops: dict[str, tuple[str, ...]]  # router -> next hops toward the LBs, router's order
    announces: dict[str, frozenset[int]]  # LB -> indices of the VIPs it announces
    hashing: dict[str, Hashing]
    ingress: tuple[str | None, ...]  # per client: its first router (None once that router fails)

    @classmethod
    def from_topology(
        cls,
        topo: Topology,
        *,
        nexthop_order: dict[str, list[str]] | None = None,
        algorithm: str | None = None,
        same_seed: bool = False,
    ) -> Fabric:
        """The converged fabric; `algorithm` / `same_seed` override every router's hashing.

        `nexthop_order` gives a router's next hops in another order (e.g. the kernel's, as
        read from `ip route`); it must name the same next hops.
        """
        routers = tuple(r for tier in topo.tiers for r in topo.routers_in(tier))
        nexthops = {r: tuple(topo.downstream(r)) for r in routers}
        for router, order in (nexthop_order or {}).items():
            if router not in nexthops or sorted(order) != sorted(nexthops[router]):
                expected = ", ".join(nexthops.get(router, ()))
                raise ValueError(f"next-hop order for {router} must list exactly {expected}")
            nexthops[router] = tuple(order)
        hashing = {
            r: _override(topo.hashing_for(r), topo.hashing, algorithm, same_seed) for r in routers
        }
        announces = {
            lb.name: frozenset(i for i, v in enumerate(topo.vips) if v.name in lb.vips)
            for lb in topo.lbs
        }
        ingress = tuple(topo.neighbors(c.name)[0] for c in topo.clients)
        return cls(
            topo, routers, tuple(lb.name for lb in topo.lbs), nexthops, announces, hashing, ingress
        )

    @cached_property
    def _reach(self) -> dict[int, frozenset[str]]:
        """Per VIP: the nodes (LBs and routers) with a path to an LB announcing it."""
        out = {}
        for v in range(len(self.topology.vips)):
            reach = {lb for lb, vips in self.announces.items() if v in vips}
            for router in reversed(self.routers):
                if any(n in reach for n in self.nexthops[router]):
                    reach.add(router)
            out[v] = frozenset(reach)
        return out

    def candidates(self, router: str, vip: int) -> tuple[str, ...]:
        """The router's ECMP set for a VIP, in the router's order."""
        reach = self._reach[vip]
        return tuple(n for n in self.nexthops[router] if n in reach)


def _override(h: Hashing, default: Hashing, algorithm: str | None, same_seed: bool) -> Hashing:
    update: dict[str, object] = {}
    if algorithm is not None:
        update["algorithm"] = Algorithm(algorithm)
    if same_seed:
        update["seed"] = default.seed
    return h.model_copy(update=update) if update else h


# ---------------------------------------------------------------- events


def parse_event(text: str, topo: Topology) -> Event:
    """'withdraw:LB', 'add[:NAME]', 'router:R', 'link:A-B' -> Event; a ValueError says why not."""
    kind, _, target = text.partition(":")
    lbs = [lb.name for lb in topo.lbs]
    if kind == "withdraw":
        if target not in lbs:
            raise ValueError(f"withdraw needs an LB node: one of {', '.join(lbs)}")
        return Event("withdraw", target)
    if kind == "add":
        name = target or _new_lb_name(topo)
        if name in topo.kinds:
            raise ValueError(f"add: {name!r} is already a node of the topology")
        return Event("add", name)
    if kind == "router":
        if target not in [r.name for r in topo.routers]:
            raise ValueError(
                f"router needs a router: one of {', '.join(r.name for r in topo.routers)}"
            )
        return Event("router", target)
    if kind == "link":
        for i, ch in enumerate(target):
            a, b = target[:i], target[i + 1 :]
            if (
                ch == "-"
                and b in topo.neighbors(a)
                and "router" in (topo.kinds.get(a), topo.kinds.get(b))
            ):
                return Event("link", target, (a, b))
        raise ValueError(
            "link needs two linked nodes on the forwarding path, as A-B"
            f" (e.g. {_example_link(topo)})"
        )
    raise ValueError(f"unknown event {text!r}: use withdraw:LB, add[:NAME], router:R or link:A-B")


def _new_lb_name(topo: Topology) -> str:
    n = len(topo.lbs) + 1
    while f"lb{n}" in topo.kinds:
        n += 1
    return f"lb{n}"


def _example_link(topo: Topology) -> str:
    r = topo.routers[-1].name
    return f"{r}-{topo.downstream(r)[0]}"


def default_events(topo: Topology) -> list[Event]:
    """What a planner asks first: one LB leaves, one joins, and a path element fails."""
    events = [Event("withdraw", topo.lbs[0].name), Event("add", _new_lb_name(topo))]
    last = topo.routers_in(topo.tiers[-1])
    events.append(
        Event(
            "link",
            f"{last[0]}-{topo.downstream(last[0])[0]}",
            (last[0], topo.downstream(last[0])[0]),
        )
    )
    for tier in reversed(topo.tiers):
        routers = topo.routers_in(tier)
        if len(routers) > 1:
            events.append(Event("router", routers[0]))
            break
    return events


def apply(fabric: Fabric, event: Event) -> Fabric:
    """The fabric after the event (BGP converged)."""
    if event.kind == "withdraw":
        return replace(fabric, announces={**fabric.announces, event.target: frozenset()})
    if event.kind == "add":
        last = set(fabric.topology.routers_in(fabric.topology.tiers[-1]))
        nexthops = {
            r: (*nh, event.target) if r in last else nh for r, nh in fabric.nexthops.items()
        }
        announces = {**fabric.announces, event.target: frozenset(range(len(fabric.topology.vips)))}
        return replace(
            fabric, lbs=(*fabric.lbs, event.target), nexthops=nexthops, announces=announces
        )
    if event.kind == "router":
        nexthops = {
            r: tuple(n for n in nh if n != event.target)
            for r, nh in fabric.nexthops.items()
            if r != event.target
        }
        nexthops[event.target] = ()
        ingress = tuple(None if r == event.target else r for r in fabric.ingress)
        return replace(fabric, nexthops=nexthops, ingress=ingress)
    a, b = event.ends
    if fabric.topology.kinds.get(a) == "client" or fabric.topology.kinds.get(b) == "client":
        client = a if fabric.topology.kinds.get(a) == "client" else b
        index = [c.name for c in fabric.topology.clients].index(client)
        ingress = tuple(None if i == index else r for i, r in enumerate(fabric.ingress))
        return replace(fabric, ingress=ingress)
    nexthops = {r: tuple(n for n in nh if {r, n} != {a, b}) for r, nh in fabric.nexthops.items()}
    return replace(fabric, nexthops=nexthops)
