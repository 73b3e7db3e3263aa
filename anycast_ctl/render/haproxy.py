"""Topology -> haproxy.cfg of one LB node (HAProxy 2.6, TCP mode, TLS passthrough). Pure.

One frontend per group of VIPs that share port, family and backends (lb_layout.proxy_groups),
bound to each VIP:port of the group; one backend per group with its servers, addressed by the
server's loopback from the address plan. Many VIPs of one service stay one frontend, one pool
and one set of server checks; a server in several pools is checked once and tracked elsewhere.

`balance roundrobin`, not `source`: the routers' ECMP hash already pins each flow to one LB
node, and each TLS connection stands alone (the backends share no session state that would
reward stickiness). Source hashing would put every connection of one client address on one
backend; lab clients are a handful of addresses, so one backend would take nearly all the load.

No `ssl`/`crt` anywhere: the bytes the client sends reach the backend unchanged (after a PROXY
protocol v2 header carrying the client's address and the connection's id), so the
backend's certificate is what the client verifies end to end (and, with
`client_certificates: required`, the backend verifies the client's: the LB cannot, it never
sees inside the handshake).

A VIP's edge policy (config/edge_policy.py) becomes rules of its frontend, cheapest first:
- `allow_sources`: `tcp-request connection reject` of any other source, before HAProxy
  allocates a session or reads a byte (counted as the frontend's denied connections);
- `rate_limit`: a stick table keyed by source address storing conn_rate(1s) and conn_cur,
  tracked at connection time and enforced by `tcp-request session reject` (counted as denied
  sessions, so rate-limit refusals and allow-list refusals are two separate counters);
- `sni_routes`: `tcp-request inspect-delay` until the ClientHello is in, refuse what is not a
  ClientHello (`req.ssl_hello_type 1`) or names no declared route, then `use_backend` by
  `req.ssl_sni` (counted as denied requests). No default backend: nothing unnamed gets through.
The agent's own TCP probe connects to the VIP from this node, so its source is the VIP
itself, an address no packet from outside can carry into a TCP handshake (Linux drops
arrivals with a local source): it is accepted before the allow-list and is not rate-counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.edge_policy import ClientCertificates, RateLimit
from anycast_ctl.config.topology import Topology, Vip
from anycast_ctl.render.lb_layout import (
    SERVICE,
    ProxyGroup,
    RunAs,
    check_profile,
    lb_paths,
    proxy_groups,
)
from anycast_ctl.render.templating import template

# Explicit: HAProxy otherwise sizes it from `ulimit -n`; ~2 fds each fit a 20000 hard limit.
MAXCONN = 4096
# Stick-table rows per frontend (one per source address seen within `expire`); about 50
# bytes each, so 100k sources cost a few MB and an address sweep cannot exhaust memory.
STICK_TABLE_SIZE = "100k"
STICK_TABLE_EXPIRE = "30s"
# How long the SNI rules wait for the ClientHello before refusing (a silent client).
SNI_INSPECT_DELAY = "5s"
# Every connection to a backend opens with a PROXY protocol v2 header: the client's address
# and port, the VIP it reached, and this connection's unique id as TLV 0x05 (PP2_TYPE_UNIQUE_ID).
# Health checks send it too (HAProxy's default for send-proxy-v2 servers), so a backend can
# refuse every connection without one.
PROXY_PROTOCOL = "send-proxy-v2 proxy-v2-options unique-id"
# tcplog's fields (HAProxy 2.6) followed by the connection id.
TCP_LOG_FORMAT = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq id=%ID"
# HAProxy's own Prometheus exporter, on the node's loopback only.
PROMETHEUS_HOST = "127.0.0.1"
PROMETHEUS_PORT = 8405


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
class SniPool:
    server_name: str
    backend: str
    servers: tuple[Server, ...]


@dataclass(frozen=True)
class Policy:
    """One frontend's edge policy, as HAProxy needs it."""

    allow_sources: tuple[str, ...] | None
    rate_limit: RateLimit | None
    client_certificates: ClientCertificates
    local_sources: tuple[str, ...]  # the agent's probe: this group's VIPs and the loopback
    table_type: str  # stick-table key: "ip" or "ipv6"

    @property
    def guards_sources(self) -> bool:
        return self.allow_sources is not None or self.rate_limit is not None


@dataclass(frozen=True)
class GroupProxy:
    name: str
    binds: tuple[Bind, ...]
    frontend: str
    backend: str
    servers: tuple[Server, ...]
    policy: Policy
    sni: tuple[SniPool, ...] = ()


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
        sni = _sni_pools(group, group.vips[0], checked_in, plan, ports)
        out.append(
            GroupProxy(
                group.name,
                binds,
                group.frontend,
                group.backend,
                tuple(servers),
                _policy(group),
                sni,
            )
        )
    return out


def _policy(group: ProxyGroup) -> Policy:
    vip = group.vips[0]  # a group's VIPs share one policy (lb_layout.proxy_groups)
    local = "127.0.0.1" if vip.version == 4 else "::1"
    return Policy(
        allow_sources=tuple(vip.allow_sources) if vip.allow_sources is not None else None,
        rate_limit=vip.rate_limit,
        client_certificates=vip.client_certificates,
        local_sources=(*(str(v.ip) for v in group.vips), local),
        table_type="ip" if vip.version == 4 else "ipv6",
    )


def _sni_pools(
    group: ProxyGroup,
    vip: Vip,
    checked_in: dict[str, str],
    plan: AddressPlan,
    ports: dict[str, int],
) -> tuple[SniPool, ...]:
    """One pool per SNI route; its servers track the group's pool (checked once per server).

    The group's own pool then carries no traffic: it holds every backend of the VIP so that
    the agent's check ("at least one server up") and HAProxy's checks stay as without SNI.
    """
    pools = []
    for route in vip.sni_routes or ():
        servers = tuple(
            Server(
                name,
                _host_port(str(plan.nodes[name].loopback_v4.ip), ports[name]),
                f"track {checked_in[name]}/{name}",
            )
            for name in route.backends
        )
        pools.append(SniPool(route.server_name, f"sni-{group.name}-{route.server_name}", servers))
    return tuple(pools)


def unique_id_format(lb: str) -> str:
    """Unique per connection across LB nodes: node name, then pid, accept time and the
    process's connection counter in hex (`lb1-3A9F-692E1B5C-1F`)."""
    return f"{lb}-%{{+X}}o%pid-%Ts-%rt"


def _template() -> jinja2.Template:
    return template("haproxy.cfg.j2")


def render_haproxy(
    topology: Topology,
    lb: str,
    *,
    run_dir: Path,
    profile: str = "recommended",
    plan: AddressPlan | None = None,
    run_as: RunAs = SERVICE,
) -> str:
    """haproxy.cfg of LB node `lb`; its stats socket and pid file go under `run_dir/<lb>/`.
    The socket is mode 660 with `run_as.group` (the agent's), or 600 without one."""
    plan = plan or topology.address_plan()
    return _template().render(
        node=lb,
        socket_group=run_as.group,
        topology=topology.name,
        paths=lb_paths(run_dir, lb),
        maxconn=MAXCONN,
        profile=check_profile(profile),
        groups=group_proxies(topology, lb, plan),
        stick_table_size=STICK_TABLE_SIZE,
        stick_table_expire=STICK_TABLE_EXPIRE,
        sni_inspect_delay=SNI_INSPECT_DELAY,
        prometheus=_host_port(PROMETHEUS_HOST, PROMETHEUS_PORT),
        proxy_protocol=PROXY_PROTOCOL,
        log_format=TCP_LOG_FORMAT,
        unique_id_format=unique_id_format(lb),
    )


def haproxy_configs(
    topology: Topology, *, run_dir: Path, profile: str = "recommended", run_as: RunAs = SERVICE
) -> dict[str, str]:
    """haproxy.cfg of every LB node that announces a VIP, by node name (as `node_configs`)."""
    plan = topology.address_plan()
    return {
        lb.name: render_haproxy(
            topology, lb.name, run_dir=run_dir, profile=profile, plan=plan, run_as=run_as
        )
        for lb in topology.lbs
        if lb.vips
    }
