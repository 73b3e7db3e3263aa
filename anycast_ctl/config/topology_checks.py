"""Cross-field checks of a topology, each problem reported at the field that causes it.

The layers are: clients -> tier 0 -> ... -> last tier -> LB nodes -> backends. A link may only
join neighbouring layers, which makes the router graph a DAG from the clients to the LBs: a
link inside one tier (or skipping one) is where a forwarding loop or a bypass would come from.
Checks run in stages; a later stage only runs when the references it follows are sound, so
one mistake does not echo as ten.
"""

from __future__ import annotations

import ipaddress

from anycast_ctl.config.edge_checks import check_edge_policy
from anycast_ctl.config.topology_model import TopologyModel

Problems = list[tuple[str, str]]

_POLICY_2 = (
    "policy 2 (inner L3 headers of encapsulated packets) is not modelled; use 0 (L3), "
    "1 (L4 5-tuple) or 3 (custom fields, recommended with fields 0x37)"
)
_SEED_0 = (
    "seed 0 makes Linux draw a random key at boot (net.ipv4.fib_multipath_hash_seed=0), so no "
    "flow can be predicted; set a fixed non-zero seed"
)


def check_topology(topo: TopologyModel) -> Problems:
    problems = _names(topo)
    if problems:
        return problems  # lookups by name below would be ambiguous
    problems += _references(topo)
    if problems:
        return problems
    problems += _layers(topo)
    problems += _hashing(topo)
    problems += _bgp(topo)
    problems += _vips_outside_pools(topo)
    problems += check_edge_policy(topo)
    if not problems:
        problems += _reachability(topo)
    return problems


def _names(topo: TopologyModel) -> Problems:
    problems: Problems = []
    seen: dict[str, str] = {}
    for section in ("routers", "lbs", "backends", "clients"):
        for i, node in enumerate(getattr(topo, section)):
            if node.name in seen:
                problems.append(
                    (f"{section}[{i}].name", f"{node.name!r} is already used by {seen[node.name]}")
                )
            else:
                seen[node.name] = f"{section}[{i}]"
    for what, values in (("tiers", topo.tiers), ("vips", [v.name for v in topo.vips])):
        first: dict[str, int] = {}
        for i, value in enumerate(values):
            where = f"tiers[{i}]" if what == "tiers" else f"vips[{i}].name"
            if value in first:
                problems.append(
                    (where, f"{value!r} is declared twice (first at index {first[value]})")
                )
            first.setdefault(value, i)
    addresses: dict[str, int] = {}
    for i, vip in enumerate(topo.vips):
        if vip.address in addresses:
            problems.append(
                (
                    f"vips[{i}].address",
                    f"{vip.address} is already VIP {topo.vips[addresses[vip.address]].name!r}",
                )
            )
        addresses.setdefault(vip.address, i)
    return problems


def _known(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _references(topo: TopologyModel) -> Problems:
    problems: Problems = []
    nodes = set(topo.kinds)
    vip_names = [v.name for v in topo.vips]
    backend_names = [b.name for b in topo.backends]
    for i, r in enumerate(topo.routers):
        if r.tier not in topo.tiers:
            problems.append(
                (f"routers[{i}].tier", f"no tier named {r.tier!r} (tiers: {_known(topo.tiers)})")
            )
    for i, tier in enumerate(topo.tiers):
        if not any(r.tier == tier for r in topo.routers):
            problems.append((f"tiers[{i}]", f"tier {tier!r} has no routers"))
    for i, lb in enumerate(topo.lbs):
        for j, name in enumerate(lb.vips):
            if name in lb.vips[:j]:
                problems.append((f"lbs[{i}].vips[{j}]", f"{name!r} is listed twice"))
            elif name not in vip_names:
                problems.append(
                    (f"lbs[{i}].vips[{j}]", f"no VIP named {name!r} (known: {_known(vip_names)})")
                )
    for i, vip in enumerate(topo.vips):
        for j, name in enumerate(vip.backends):
            if name not in backend_names:
                problems.append(
                    (
                        f"vips[{i}].backends[{j}]",
                        f"no backend named {name!r} (known: {_known(backend_names)})",
                    )
                )
    for i, link in enumerate(topo.links):
        for end in ("a", "b"):
            name = getattr(link, end)
            if name not in nodes:
                problems.append((f"links[{i}].{end}", f"no node named {name!r}"))
    return problems


def _layers(topo: TopologyModel) -> Problems:
    problems: Problems = []
    pairs: dict[frozenset[str], int] = {}
    last = len(topo.tiers) - 1
    for i, link in enumerate(topo.links):
        if link.a == link.b:
            problems.append((f"links[{i}]", f"links {link.a!r} to itself"))
            continue
        pair = frozenset((link.a, link.b))
        if pair in pairs:
            problems.append(
                (f"links[{i}]", f"{link.a} and {link.b} are already linked by links[{pairs[pair]}]")
            )
            continue
        pairs[pair] = i
        low, high = sorted((link.a, link.b), key=topo.tier_index)
        kl, kh = topo.kind(low), topo.kind(high)
        step = topo.tier_index(high) - topo.tier_index(low)
        if step == 1:
            continue  # neighbouring layers: the only legal shape
        if kl == kh == "router" and step == 0:
            tier = topo.router(low).tier
            why = (
                f"{low} and {high} are both in tier {tier!r}; a link inside a tier makes a loop"
                " possible (routers link only to the next tier)"
            )
        elif kl == kh:
            why = f"{low} and {high} are both {kl} nodes; they cannot be linked"
        elif kl == "client":
            why = (
                f"client {low} cannot link to {high}: clients link only to a first-tier router"
                f" ({topo.tiers[0]})"
            )
        elif kl == "router":
            also = " or to LB nodes" if topo.tier_index(low) == last else ""
            why = (
                f"{low} (tier {topo.router(low).tier!r}) cannot link to {high}: routers link only"
                f" to the next tier{also}"
            )
        else:
            why = (
                f"LB {low} cannot link to {high}: LB nodes link only to last-tier routers"
                f" ({topo.tiers[-1]}) and backends"
            )
        problems.append((f"links[{i}]", why))
    if problems:
        return problems
    for i, c in enumerate(topo.clients):
        if len(topo.neighbors(c.name)) != 1:
            problems.append(
                (
                    f"clients[{i}]",
                    f"client {c.name} must have exactly one link (to a first-tier router),"
                    f" has {len(topo.neighbors(c.name))}",
                )
            )
    for i, r in enumerate(topo.routers):
        if not topo.downstream(r.name):
            toward = (
                "an LB node"
                if topo.tier_index(r.name) == last
                else f"a router in tier {topo.tiers[topo.tier_index(r.name) + 1]!r}"
            )
            problems.append((f"routers[{i}]", f"{r.name} is a dead end: link it to {toward}"))
    for i, lb in enumerate(topo.lbs):
        if not any(topo.kind(n) == "router" for n in topo.neighbors(lb.name)):
            problems.append(
                (f"lbs[{i}]", f"{lb.name} has no link to a router in tier {topo.tiers[-1]!r}")
            )
    for i, vip in enumerate(topo.vips):
        for j, backend in enumerate(vip.backends):
            for announcer in topo.announcers(vip.name):
                if backend not in topo.neighbors(announcer):
                    problems.append(
                        (
                            f"vips[{i}].backends[{j}]",
                            f"backend {backend} has no link to {announcer}, "
                            f"which announces {vip.name!r}",
                        )
                    )
    return problems


def _hashing(topo: TopologyModel) -> Problems:
    problems: Problems = []
    for i, r in enumerate(topo.routers):
        h = topo.hashing_for(r.name)
        own = r.hashing.model_fields_set if r.hashing else set()

        # Bound per router: a field the router sets is reported under the router.
        def at(field: str, i: int = i, own: set[str] = own) -> str:
            return f"routers[{i}].hashing.{field}" if field in own else f"hashing.{field}"

        nexthops = topo.downstream(r.name)
        for name in h.weights:
            if name not in nexthops:
                problems.append(
                    (
                        f"{at('weights')}.{name}",
                        f"{r.name} has no next hop named {name!r} (next hops: {_known(nexthops)})",
                    )
                )
        if h.algorithm == "linux":
            if h.policy == 2:
                problems.append((at("policy"), _POLICY_2))
            if h.seed == 0:
                problems.append((at("seed"), f"{r.name}: {_SEED_0}"))
        if h.algorithm == "resilient" and h.buckets < len(nexthops):
            problems.append(
                (
                    at("buckets"),
                    f"{h.buckets} buckets cannot hold {len(nexthops)} next hops of {r.name}",
                )
            )
    return problems


def _bgp(topo: TopologyModel) -> Problems:
    problems: Problems = []
    if topo.bfd.enabled and topo.bfd.detection_ms >= topo.bgp.hold_time * 1000:
        problems.append(
            (
                "bfd.interval_ms",
                f"BFD detects a dead peer in {topo.bfd.detection_ms} ms "
                f"(interval_ms x multiplier), not before bgp.hold_time ({topo.bgp.hold_time} s) "
                "would: shorten it or set bfd.enabled: false",
            )
        )
    for i, lb in enumerate(topo.lbs):
        limit = topo.maximum_prefix_for(lb.name)
        if len(lb.vips) > limit:
            where = f"lbs[{i}].maximum_prefix" if lb.maximum_prefix else "bgp.maximum_prefix"
            problems.append(
                (
                    where,
                    f"{lb.name} announces {len(lb.vips)} VIPs but the limit is {limit}:"
                    " its sessions would be torn down",
                )
            )
    return problems


def _vips_outside_pools(topo: TopologyModel) -> Problems:
    """A VIP inside a pool the topology uses would be a link, loopback or client address: the
    routers' prefix-lists, built from the VIPs, would then let LB nodes announce it."""
    pools = [
        ("addressing.ipv4", ipaddress.ip_network(topo.addressing.ipv4)),
        ("addressing.ipv6", ipaddress.ip_network(topo.addressing.ipv6)),
    ]
    for i, c in enumerate(topo.clients):
        pools += [
            (f"clients[{i}].prefixes[{j}]", ipaddress.ip_network(p))
            for j, p in enumerate(c.prefixes)
        ]
    problems: Problems = []
    for i, vip in enumerate(topo.vips):
        for where, pool in pools:
            if pool.version == vip.version and vip.ip in pool:
                problems.append(
                    (
                        f"vips[{i}].address",
                        f"{vip.ip} is inside {where} ({pool}), whose addresses go to links, "
                        "loopbacks or clients; choose a VIP outside every pool",
                    )
                )
    return problems


def _reachability(topo: TopologyModel) -> Problems:
    """Every VIP must be reachable: some client of its IP version gets to an LB announcing it."""
    problems: Problems = []
    for i, vip in enumerate(topo.vips):
        announcers = topo.announcers(vip.name)
        if not announcers:
            problems.append((f"vips[{i}]", f"no LB node announces VIP {vip.name!r}"))
            continue
        if not any(c.prefix(vip.version) for c in topo.clients):
            problems.append(
                (
                    f"vips[{i}]",
                    f"unreachable: no client has an IPv{vip.version} prefix to reach {vip.name!r}",
                )
            )
            continue
        reach = _reaching(topo, set(announcers))
        if not any(
            topo.neighbors(c.name)[0] in reach for c in topo.clients if c.prefix(vip.version)
        ):
            problems.append(
                (
                    f"vips[{i}]",
                    f"unreachable: no client has a path to an LB announcing {vip.name!r}"
                    f" ({_known(announcers)})",
                )
            )
    for i, c in enumerate(topo.clients):
        for j, p in enumerate(c.prefixes):
            if any(
                ipaddress.ip_network(p).overlaps(ipaddress.ip_network(q))
                for d in topo.clients[:i]
                for q in d.prefixes
            ):
                problems.append(
                    (f"clients[{i}].prefixes[{j}]", f"{p} overlaps another client's prefix")
                )
    return problems


def _reaching(topo: TopologyModel, targets: set[str]) -> set[str]:
    """Routers with a downstream path to any of `targets` (walk the DAG from the LBs upward)."""
    reach = set(targets)
    for tier in reversed(topo.tiers):
        for r in topo.routers_in(tier):
            if any(n in reach for n in topo.downstream(r)):
                reach.add(r)
    return reach
