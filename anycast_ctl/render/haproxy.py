"""Topology -> haproxy.cfg of one LB node (HAProxy 2.6, TCP mode, TLS passthrough). Pure.

One frontend per group of VIPs that share port, family and backends (lb_layout.proxy_groups),
bound to each VIP:port of the group; one backend per group with its servers, addressed by the
server's loopback from the address plan. Many VIPs of one service stay one frontend, one pool
and one set of server checks; a server in several pools is checked once and tracked elsewhere.

`balance roundrobin`, not `source`: the routers' ECMP hash already pins each flow to one LB
node, and each TLS connection stands alone (the backends share no session state that would
reward stickiness). Source hashing would put every connection of one client address on one
backend; lab clients are a handful of addresses, so one backend would take nearly all the load.

No `ssl`/`crt` anywhere and no PROXY protocol: the bytes the client sends reach the backend
unchanged, so the backend's certificate is what the client verifies end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.topology import Topology
from anycast_ctl.render.lb_layout import check_profile, lb_paths, proxy_groups
from anycast_ctl.render.templating import template

# Explicit: HAProxy otherwise sizes it from `ulimit -n`; ~2 fds each fit a 20000 hard limit.
MAXCONN = 4096


@dataclass(frozen=True)
class Server:
    name: str
    address: str  # "ip:port"
    check: str  # "check", or "track <backend>/<server>" for a server another pool already checks


@dataclass(frozen=True)
class Bind:
    vip: str
    address: str  # "ip:port"
    tls_name: str


@dataclass(frozen=True)
class GroupProxy:
    name: str
    binds: tuple[Bind, ...]
    frontend: str
    backend: str
    servers: tuple[Server, ...]


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def group_proxies(topology: Topology, lb: str, plan: AddressPlan) -> list[GroupProxy]:
    """One frontend + pool per VIP group; each backend server health-checked by one pool only.

    A server in several pools is checked by the first and tracked by the others (`track`), so
    HAProxy's checks per second grow with distinct servers, not with pools or VIPs.
    """
    ports = {b.name: b.port for b in topology.backends}
    checked_in: dict[str, str] = {}  # server -> the backend that checks it
    out = []
    for group in proxy_groups(topology, lb):
        servers = []
        for name in group.backends:
            owner = checked_in.setdefault(name, group.backend)
            check = "check" if owner == group.backend else f"track {owner}/{name}"
            address = _host_port(str(plan.nodes[name].loopback_v4.ip), ports[name])
            servers.append(Server(name, address, check))
        binds = tuple(
            Bind(vip.name, _host_port(str(vip.ip), vip.port), vip.tls_name) for vip in group.vips
        )
        out.append(GroupProxy(group.name, binds, group.frontend, group.backend, tuple(servers)))
    return out


def _template() -> jinja2.Template:
    return template("haproxy.cfg.j2")


def render_haproxy(
    topology: Topology,
    lb: str,
    *,
    run_dir: Path,
    profile: str = "recommended",
    plan: AddressPlan | None = None,
) -> str:
    """haproxy.cfg of LB node `lb`; its stats socket and pid file go under `run_dir/<lb>/`."""
    plan = plan or topology.address_plan()
    return _template().render(
        node=lb,
        topology=topology.name,
        paths=lb_paths(run_dir, lb),
        maxconn=MAXCONN,
        profile=check_profile(profile),
        groups=group_proxies(topology, lb, plan),
    )


def haproxy_configs(
    topology: Topology, *, run_dir: Path, profile: str = "recommended"
) -> dict[str, str]:
    """haproxy.cfg of every LB node that announces a VIP, by node name (as `node_configs`)."""
    plan = topology.address_plan()
    return {
        lb.name: render_haproxy(topology, lb.name, run_dir=run_dir, profile=profile, plan=plan)
        for lb in topology.lbs
        if lb.vips
    }
