"""Topology -> haproxy.cfg of one LB node (HAProxy 2.6, TCP mode, TLS passthrough). Pure.

One frontend per VIP the node announces, bound to VIP:port; one backend per VIP with every
backend server of that VIP, addressed by the server's loopback from the address plan.

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
from anycast_ctl.config.topology import Topology, Vip
from anycast_ctl.render.lb_layout import backend_name, check_profile, frontend_name, lb_paths
from anycast_ctl.render.templating import template

MAXCONN = 4096  # explicit: HAProxy otherwise sizes it from `ulimit -n`; needs ~2 fds each, fits a 20000 hard limit


@dataclass(frozen=True)
class Server:
    name: str
    address: str  # "ip:port"


@dataclass(frozen=True)
class VipProxy:
    name: str
    ip_port: str
    tls_name: str
    bind: str
    frontend: str
    backend: str
    servers: tuple[Server, ...]


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def vip_proxy(topology: Topology, vip: Vip, plan: AddressPlan) -> VipProxy:
    ports = {b.name: b.port for b in topology.backends}
    servers = tuple(
        Server(name, _host_port(str(plan.nodes[name].loopback_v4.ip), ports[name]))
        for name in vip.backends
    )
    bind = _host_port(str(vip.ip), vip.port)
    return VipProxy(
        name=vip.name,
        ip_port=bind,
        tls_name=vip.tls_name,
        bind=bind,
        frontend=frontend_name(vip.name),
        backend=backend_name(vip.name),
        servers=servers,
    )


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
    node = topology.lb(lb)
    return _template().render(
        node=lb,
        topology=topology.name,
        paths=lb_paths(run_dir, lb),
        maxconn=MAXCONN,
        profile=check_profile(profile),
        vips=[vip_proxy(topology, topology.vip(name), plan) for name in node.vips],
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
