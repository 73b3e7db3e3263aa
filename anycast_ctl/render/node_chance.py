"""Topology -> the `second_chance` section of one LB node's agent config (pure).

On by default (`second_chance.enabled` in the topology) wherever the node has another LB
node to forward to. Every LB node of the topology is a peer, with the address its overlay
packets and heartbeats use: its IPv4 address on its first link to a router, as
`render/chance.plan_for` computes it. The node's IPv6 VIPs are listed beside its IPv4 ones
(the agent builds an ip6 table for them), and the peers then carry their IPv6 overlay
address. Where the routers' hashing cannot be predicted, the reasons go into the section
(the agent logs them) and `chance_notice` says so to the operator.
"""

from __future__ import annotations

from pathlib import PurePath

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.node_chance import overlay6_of, overlay_of
from anycast_ctl.config.topology import Topology
from anycast_ctl.render import yaml_text
from anycast_ctl.sim.owners import unpredictable

TOPOLOGY_FILE = "topology.yaml"  # the copy an LB node's agent reads, beside its node.yaml


def underlay_address(topo: Topology, plan: AddressPlan, lb: str) -> str | None:
    """The node's IPv4 address on its first link to a router (None: no IPv4 link)."""
    for interface in plan.nodes[lb].interfaces:
        if topo.kind(interface.peer) == "router" and interface.ipv4 is not None:
            return str(interface.ipv4.ip)
    return None


def chance_section(
    topo: Topology, lb: str, plan: AddressPlan, topology_file: PurePath | None
) -> dict[str, object] | None:
    """The section's data, or None where second chance stays off (disabled by the topology,
    a single LB node, or no IPv4 underlay)."""
    settings = topo.second_chance
    names = [node.name for node in topo.lbs]
    underlays = {name: underlay_address(topo, plan, name) for name in names}
    own = underlays[lb]
    if not settings.enabled or len(names) < 2 or own is None:
        return None
    mine = topo.lb(lb).vips
    # Both families, IPv4 first: the IPv6 ones get the ip6 table over the same IPv4 underlay.
    ordered = sorted((v for v in topo.vips if v.name in mine), key=lambda v: v.version)
    vips = [{"address": str(v.ip), "port": v.port} for v in ordered]
    dual = any(v.version == 6 for v in ordered)
    heartbeat: dict[str, object] = {"port": settings.heartbeat_port}
    if settings.key is not None:
        heartbeat["key"] = settings.key
    section: dict[str, object] = {
        "enabled": True,
        "index": names.index(lb),
        "underlay": own,
        "vips": vips,
        "peers": [
            {
                "name": name,
                "index": i,
                "underlay": address,
                "overlay": overlay_of(i),
                **({"overlay6": overlay6_of(i)} if dual else {}),
            }
            for i, name in enumerate(names)
            if name != lb and (address := underlays[name]) is not None
        ],
        "hop_limit": settings.hop_limit,
        "overlay_mtu": settings.overlay_mtu,
        "drain_timeout": settings.drain_timeout,
        "heartbeat": heartbeat,
    }
    reasons = unpredictable(topo)
    if reasons:
        section["unpredictable"] = reasons
    elif topology_file is not None:
        section["topology"] = str(topology_file)
    return section


def chance_notice(topo: Topology) -> str | None:
    """What `render node` tells the operator: None when forwarding predicts the owners."""
    if not topo.second_chance.enabled:
        return None
    reasons = unpredictable(topo)
    if not reasons:
        return None
    return (
        "second chance: the routers' hashing cannot be predicted ("
        + "; ".join(reasons)
        + "); moved connections are forwarded along the fallback chain "
        "(the live LB nodes in topology order) instead of to their computed previous owner"
    )


def topology_yaml(topo: Topology) -> str:
    """The topology as the agent reads it back (`load_topology`): the fields the file set."""
    data = topo.model_dump(mode="json", exclude_unset=True)
    header = f"# Topology {topo.name!r} for the agent's second chance, rendered by anycast-ctl.\n"
    return header + yaml_text.dump(data, sort_keys=False, default_flow_style=False)
