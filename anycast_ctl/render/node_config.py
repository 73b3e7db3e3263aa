"""Topology -> one agent NodeConfig per LB node, and its YAML (pure).

The agent's VIP list is the LB's `vips` from the topology, the same list the routers'
prefix-lists are rendered from, so an agent can never announce what its routers refuse, nor
miss what they expect. Its BGP neighbors are the upstream ends of the LB's sessions in the
address plan, with the same ASNs, MD5 passwords and hold time the routers are given.

Every VIP is guarded by two checks of its proxy group (VIPs sharing port, family and
backends share one HAProxy frontend and pool: lb_layout.proxy_groups), both required:
- `<group>-haproxy`: HAProxy's runtime API says the group's frontend is open and at least one
  server of its pool is up (a refused socket, i.e. HAProxy dead, is a hard failure);
- `<group>-tcp`: a TCP connect to the group's first VIP:port on this node, the path a client's
  packets take. One probe stands for the group: its VIPs are bound by the same frontend of the
  same process (`transparent` binds cannot fail one address alone), and each address being on
  lo is the agent's own doing. So the checks per tick grow with groups, not with VIPs.
With the topology's `certificates.tls_checks`, a third, `<group>-tls`: a TLS handshake to the
same VIP:port with the VIP's TLS name, verified against `certificates.ca_file`, whose days left
the node's `certificates:` policy judges (warn, staggered withdraw). Groups the LB node cannot
check that way get none: a VIP requiring client certificates (the LB holds no key to present)
and an SNI-routed VIP (the node's own probe reaches the pool without its route, so the backend
answering may not hold the probed name).

Every node config carries `certificates:` with the topology's thresholds and the node's slot
(`certificate_slots`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

from anycast_ctl.config.address_plan import AddressPlan, BgpSession
from anycast_ctl.config.loading import validate
from anycast_ctl.config.node import ExabgpDialect, NodeConfig
from anycast_ctl.config.topology import Topology
from anycast_ctl.config.topology_model import Vip
from anycast_ctl.render import yaml_text
from anycast_ctl.render.lb_layout import (
    LB_SESSION_HOPS,
    ProxyGroup,
    check_profile,
    lb_paths,
    proxy_groups,
)
from anycast_ctl.render.node_chance import chance_section

EXABGP_DIALECT: ExabgpDialect = "5.0"  # the ExaBGP in our venv and lab


def haproxy_check_name(vip: str) -> str:
    return f"{vip}-haproxy"


def tcp_check_name(vip: str) -> str:
    return f"{vip}-tcp"


def tls_check_name(vip: str) -> str:
    return f"{vip}-tls"


def tls_checkable(group: ProxyGroup) -> bool:
    """Whether the LB node can check the certificate of the group's backends (module doc)."""
    return all(v.client_certificates != "required" and not v.sni_routes for v in group.vips)


def certificate_slots(topology: Topology) -> dict[str, tuple[int, int]]:
    """LB node -> (slot, slots) for the staggered withdraw threshold (cert_policy.py).

    Every node announcing a VIP sees the same certificates for it (the VIP's backends), so for
    each VIP the last of the nodes announcing it must hold the last slot, which never withdraws
    early. `slots` is the most nodes announcing one VIP; a VIP's nodes, in topology order, are
    aligned to end at the last slot, and a node announcing several VIPs takes the latest slot
    any of them gives it. So every VIP keeps a node until its certificate has expired, and the
    nodes of the most shared VIP leave one at a time."""
    announcing: dict[str, list[str]] = {}
    for lb in topology.lbs:
        for name in lb.vips:
            announcing.setdefault(name, []).append(lb.name)
    slots = max((len(nodes) for nodes in announcing.values()), default=1)
    slot: dict[str, int] = {}
    for nodes in announcing.values():
        for rank, node in enumerate(nodes):
            slot[node] = max(slot.get(node, 0), slots - len(nodes) + rank)
    return {lb.name: (slot[lb.name], slots) for lb in topology.lbs if lb.name in slot}


@dataclass(frozen=True)
class Rendering:
    """What a node config's rendering takes besides the topology: the same for every node."""

    run_dir: Path
    profile: str
    state_dir: Path | None
    topology_file: PurePath | None
    ca_file: PurePath | None


def node_configs(
    topology: Topology,
    *,
    run_dir: Path,
    profile: str = "recommended",
    state_dir: Path | None = None,
    topology_file: PurePath | None = None,
    ca_file: PurePath | None = None,
) -> dict[str, NodeConfig]:
    """The agent config of every LB node that announces at least one VIP, by node name.

    An LB with no VIPs runs no agent (a NodeConfig needs at least one VIP), so it is absent.
    Sockets go under `run_dir/<node>/`, the drain file under `state_dir/<node>/` (a lab's
    throwaway state_dir None: beside the sockets); see `lb_layout.lb_paths`.
    """
    how = Rendering(run_dir, profile, state_dir, topology_file, ca_file)
    plan = topology.address_plan()
    return {lb.name: _validated(topology, lb.name, plan, how) for lb in topology.lbs if lb.vips}


def node_config(
    topology: Topology,
    lb: str,
    *,
    run_dir: Path,
    profile: str = "recommended",
    plan: AddressPlan | None = None,
    state_dir: Path | None = None,
    topology_file: PurePath | None = None,
    ca_file: PurePath | None = None,
) -> NodeConfig:
    """The agent config of one LB node; raises UserError if it cannot be a valid NodeConfig.
    `topology_file`: where the node finds the topology (second chance predicts owners with it).
    `ca_file` (the CA as the node sees it) overrides the topology's `certificates.ca_file`:
    the lab's own CA.
    """
    how = Rendering(run_dir, profile, state_dir, topology_file, ca_file)
    return _validated(topology, lb, plan or topology.address_plan(), how)


def _validated(topology: Topology, lb: str, plan: AddressPlan, how: Rendering) -> NodeConfig:
    data = node_config_data(topology, lb, plan, how)
    return validate(NodeConfig, data, f"<node config rendered for {lb}>")


def node_config_data(
    topology: Topology, lb: str, plan: AddressPlan, how: Rendering
) -> dict[str, object]:
    """The NodeConfig as plain data: exactly the fields the rendering decides."""
    profile, ca_file = how.profile, how.ca_file
    node = topology.lb(lb)
    timing = check_profile(profile).agent
    damping = check_profile(profile).damping
    paths = lb_paths(how.run_dir, lb, how.state_dir)
    vips = [topology.vip(name) for name in node.vips]
    checks: dict[str, dict[str, object]] = {}
    checks_of: dict[str, list[str]] = {}  # VIP name -> its group's checks
    settings = topology.certificates
    slot, slots = certificate_slots(topology)[lb]
    for group in proxy_groups(topology, lb):
        first = group.vips[0]
        checks[haproxy_check_name(group.name)] = {
            "type": "haproxy",
            "socket": str(paths.haproxy_socket),
            "frontend": group.frontend,
            "backend": group.backend,
            "min_servers_up": 1,
        }
        checks[tcp_check_name(group.name)] = {
            "type": "listening",  # the kernel's listener table: no connect a tick
            "host": str(first.ip),
            "port": first.port,
        }
        names = [haproxy_check_name(group.name), tcp_check_name(group.name)]
        if settings.tls_checks and tls_checkable(group):
            tls = _tls_check(first, ca_file or settings.ca_file, timing.interval)
            checks[tls_check_name(group.name)] = tls
            names.append(tls_check_name(group.name))
        for vip in group.vips:
            checks_of[vip.name] = names
    families = sorted({vip.version for vip in vips})
    chance = chance_section(topology, lb, plan, how.topology_file)
    return {
        "node": lb,
        "bgp": {
            "local_as": node.asn,
            "router_id": plan.nodes[lb].router_id,
            "neighbors": [
                _neighbor(session, family)
                for family in families
                for session in plan.sessions_of(lb)
            ],
        },
        "bfd": _bfd(topology),
        "exabgp": {"dialect": EXABGP_DIALECT},
        "timing": timing.model_dump(exclude_none=True),
        "damping": damping.model_dump(),
        "checks": checks,
        "vips": [
            {
                "address": vip.address,
                "checks": checks_of[vip.name],
                "combine": "all",
            }
            for vip in vips
        ],
        # "always": the VIP stays on lo while the agent runs, so HAProxy's listener and the
        # TCP check keep working while the route is withdrawn (drain, failed check).
        "loopback": {"manage": True, "interface": "lo", "mode": "always"},
        "control": {"socket": str(paths.control_socket)},
        "drain": {"state_file": str(paths.drain_file)},
        **({"second_chance": chance} if chance is not None else {}),
        "certificates": {
            "warn_days": settings.warn_days,
            "withdraw_days": settings.withdraw_days,
            "slot": slot,
            "slots": slots,
        },
    }


def _bfd(topology: Topology) -> dict[str, object]:
    """The LB's bfdd: the topology's timers. Multihop, because the routers are FRR 8.4 with
    `ttl-security hops` on the LB sessions, which bgpd opens as multihop BFD (docs/bfd.md)."""
    bfd = topology.bfd
    if not bfd.enabled:
        return {"enabled": False}
    return {"interval_ms": bfd.interval_ms, "multiplier": bfd.multiplier, "multihop": True}


def _tls_check(vip: Vip, ca_file: PurePath | None, interval: float) -> dict[str, object]:
    # A handshake through HAProxy to a backend costs more than a connect: it gets the whole
    # interval (the most a timeout may be: runs must not overlap), not the connect timeout.
    out: dict[str, object] = {
        "type": "tls",
        "host": str(vip.ip),
        "port": vip.port,
        "server_name": vip.tls_name,
        "timeout": interval,
    }
    if ca_file is not None:
        out["ca_file"] = str(ca_file)
    return out


def _neighbor(session: BgpSession, family: int) -> dict[str, object]:
    # The LB is always the downstream side of its sessions; its peer is the router above.
    router, here = session.upstream.interface, session.downstream.interface
    address, local = (router.ipv4, here.ipv4) if family == 4 else (router.ipv6, here.ipv6)
    assert address is not None and local is not None  # IPv6 links exist once a VIP is IPv6
    out: dict[str, object] = {
        "address": str(address.ip),
        "local_address": str(local.ip),
        "peer_as": session.upstream.asn,
        "hold_time": session.hold_time,
        "ttl_security_hops": LB_SESSION_HOPS,
    }
    if session.md5_password is not None:
        out["md5_password"] = session.md5_password
    return out


def node_config_yaml(config: NodeConfig, *, topology_name: str | None = None) -> str:
    """YAML that `load_node_config` reads back into an equal NodeConfig.

    Only the fields that were set are written (a rendered config: the rendering's choices, not
    every default); keys keep the model's order, which is stable and reads top-down.
    """
    source = f" from topology {topology_name!r}" if topology_name else ""
    header = (
        f"# Agent config of LB node {config.node}, rendered by anycast-ctl{source}.\n"
        "# Edits are overwritten when it is rendered again; change the topology instead.\n"
    )
    data = config.model_dump(mode="json", exclude_unset=True)
    return header + yaml_text.dump(
        data, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
