"""Cross-field checks of the VIPs' edge policy (edge_policy.py), each at the field at fault.

Runs after the references are sound (every backend a VIP names exists). What it refuses:
- an `allow_sources` prefix of the other address family (it would admit nothing), or one
  already covered by an earlier entry (an audit should read each source once);
- a VIP none of whose clients is admitted (nothing could test it, and it would serve no one);
- SNI routes naming one server name twice, or a backend the VIP does not list, and VIP
  backends no route uses; a `server_name` with SNI routes that no route declares (clients
  would send a name the LB refuses);
- one backend serving VIPs with different `client_certificates`: a backend listens on one
  port, so a client could reach the stricter service with the other's name and no certificate.
"""

from __future__ import annotations

import ipaddress

from anycast_ctl.config.topology_model import TopologyModel, Vip

Problems = list[tuple[str, str]]


def check_edge_policy(topo: TopologyModel) -> Problems:
    problems: Problems = []
    for i, vip in enumerate(topo.vips):
        problems += _sources(topo, i, vip)
        problems += _sni(i, vip)
    problems += _client_certificates(topo)
    return problems


def _sources(topo: TopologyModel, i: int, vip: Vip) -> Problems:
    if vip.allow_sources is None:
        return []
    problems: Problems = []
    nets = [ipaddress.ip_network(p) for p in vip.allow_sources]
    for j, net in enumerate(nets):
        where = f"vips[{i}].allow_sources[{j}]"
        if net.version != vip.version:
            problems.append(
                (
                    where,
                    f"{net} is IPv{net.version} but VIP {vip.name!r} is IPv{vip.version}:"
                    " it would admit nothing",
                )
            )
            continue
        for k, earlier in enumerate(nets[:j]):
            if earlier.version == net.version and net.subnet_of(earlier):  # type: ignore[arg-type]
                problems.append((where, f"{net} is already admitted by allow_sources[{k}]"))
                break
    if problems:
        return problems
    admitted = [
        c.name
        for c in topo.clients
        if (p := c.prefix(vip.version)) is not None and any(p.subnet_of(n) for n in nets)  # type: ignore[arg-type]
    ]
    if not admitted:
        problems.append(
            (
                f"vips[{i}].allow_sources",
                f"admits no client of the topology: VIP {vip.name!r} would serve no one"
                " (a client's whole prefix must lie inside an entry)",
            )
        )
    return problems


def _sni(i: int, vip: Vip) -> Problems:
    if vip.sni_routes is None:
        return []
    problems: Problems = []
    first: dict[str, int] = {}
    used: set[str] = set()
    for j, route in enumerate(vip.sni_routes):
        where = f"vips[{i}].sni_routes[{j}]"
        if route.server_name in first:
            problems.append(
                (
                    f"{where}.server_name",
                    f"{route.server_name!r} is already routed by"
                    f" sni_routes[{first[route.server_name]}]",
                )
            )
        first.setdefault(route.server_name, j)
        for k, backend in enumerate(route.backends):
            if backend not in vip.backends:
                problems.append(
                    (
                        f"{where}.backends[{k}]",
                        f"{backend!r} is not among the backends of VIP {vip.name!r}"
                        f" ({', '.join(vip.backends)})",
                    )
                )
            used.add(backend)
    for j, backend in enumerate(vip.backends):
        if backend not in used:
            problems.append(
                (f"vips[{i}].backends[{j}]", f"{backend!r} serves none of the VIP's sni_routes")
            )
    if vip.server_name is not None and vip.server_name.lower() not in first:
        problems.append(
            (
                f"vips[{i}].server_name",
                f"{vip.server_name!r} is not one of the VIP's sni_routes: the LB would refuse it",
            )
        )
    return problems


def _client_certificates(topo: TopologyModel) -> Problems:
    problems: Problems = []
    policy_of: dict[str, tuple[int, Vip]] = {}  # backend -> the first VIP it serves
    for i, vip in enumerate(topo.vips):
        clashes = []
        for backend in vip.backends:
            _, other = policy_of.setdefault(backend, (i, vip))
            if other.client_certificates != vip.client_certificates:
                clashes.append(f"{backend} (VIP {other.name!r}: {other.client_certificates.value})")
        if clashes:
            problems.append(
                (
                    f"vips[{i}].client_certificates",
                    f"{vip.client_certificates.value!r}, but its backends also serve other VIPs"
                    f" otherwise: {', '.join(clashes)}; a backend listens on one port, so it has"
                    " one client-certificate policy (give this VIP its own backends)",
                )
            )
    return problems
