"""A topology at scale: every VIP copied onto consecutive addresses, announced by the same nodes.

    big = with_vip_copies(load_topology("topologies/default.yaml"), 1000)
    # default.yaml's one VIP `web` becomes web, web-2 ... web-1000: 1,000 VIPs on each LB node

Pure. A copy keeps everything of its original (port, backends, edge policy) and its TLS name,
so the backends' certificates and HAProxy's shared frontends stay one per service; only the
address and the name differ. Copies take addresses from `pool_v4` / `pool_v6` (the RFC 2544
benchmarking range and a documentation prefix by default, both outside the default address
plan). Every LB node's maximum_prefix grows by the same factor, so the routers' limits keep
the headroom the topology gave them. The result goes through the topology's own checks.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from anycast_ctl.config.topology import Topology
from anycast_ctl.errors import Problem, UserError

DEFAULT_POOL_V4 = "198.19.0.0/16"
DEFAULT_POOL_V6 = "2001:db8:5ca1::/64"
MAX_COPIES = 10_000


def with_vip_copies(
    topology: Topology,
    copies: int,
    pool_v4: str = DEFAULT_POOL_V4,
    pool_v6: str = DEFAULT_POOL_V6,
) -> Topology:
    """`topology` with every VIP made `copies` VIPs (the original and copies - 1 more)."""
    if not 1 <= copies <= MAX_COPIES:
        raise UserError.single("<scale>", "copies", f"{copies}: must lie in 1..{MAX_COPIES}")
    if copies == 1:
        return topology
    data: dict[str, Any] = topology.model_dump(mode="json", exclude_unset=True)
    pools = {4: ipaddress.ip_network(pool_v4), 6: ipaddress.ip_network(pool_v6)}
    wanted = {v: sum(1 for vip in topology.vips if vip.version == v) for v in (4, 6)}
    addresses = {}
    for version, pool in pools.items():
        need = wanted[version] * (copies - 1)
        if need > pool.num_addresses - 1:
            raise UserError.single(
                "<scale>",
                f"pool_v{version}",
                f"{pool} holds {pool.num_addresses - 1} addresses; {need} copies need more",
            )
        addresses[version] = iter([pool.network_address + i for i in range(1, need + 1)])
    vips, copies_of = [], {}
    for original, raw in zip(topology.vips, data["vips"], strict=True):
        names = [original.name] + [f"{original.name}-{i}" for i in range(2, copies + 1)]
        copies_of[original.name] = names
        vips.append(raw)
        for name in names[1:]:
            address = next(addresses[original.version])
            vips.append(
                {
                    **raw,
                    "name": name,
                    "address": f"{address}/{address.max_prefixlen}",
                    "server_name": original.tls_name,
                }
            )
    data["vips"] = vips
    for lb, raw_lb in zip(topology.lbs, data["lbs"], strict=True):
        raw_lb["vips"] = [name for vip in lb.vips for name in copies_of[vip]]
        raw_lb["maximum_prefix"] = topology.maximum_prefix_for(lb.name) * copies
    return _checked(data, topology.source)


def _checked(data: dict[str, Any], source: str) -> Topology:
    topo = Topology.model_validate(data)
    topo._source = f"{source} (VIPs copied)"
    problems = topo.cross_check()
    if problems:
        raise UserError([Problem(topo.source, where, msg) for where, msg in problems])
    return topo
