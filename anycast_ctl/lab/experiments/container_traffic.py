"""`lab traffic` against a container deployment: the same flows, the same check against the
simulator, sent and observed through the containers.

Flows come from `traffic.plan_flows`; each client's batch goes to anycast-ctl's traffic tool
inside the client's container (`podman exec -i CLIENT python3 -m
anycast_ctl.lab.programs.traffic_client --ca <the lab CA>`); answers become results with
`traffic.flow_results`; the prediction is `predict_held` given each router's kernel next hops
for each VIP, read from the router container's FIB (`ip -j route show VIP`).
"""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Any

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.containers.podman import Deployment
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.traffic import (
    Flow,
    TrafficResult,
    expected_outcome,
    flow_results,
    per_client,
    plan_flows,
)
from anycast_ctl.lab.net.daemons import CommandResult
from anycast_ctl.lab.observe.expect import address_owners, expected_nexthops
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.render.containerlab_nodes import PKI_DIR
from anycast_ctl.sim.predict import predict_held

TRAFFIC_MODULE = "anycast_ctl.lab.programs.traffic_client"


def route_gateways(route_json: str) -> list[str]:
    """`ip -j route show PREFIX` -> the gateways in the kernel's order (pure)."""
    gateways: list[str] = []
    for route in json.loads(route_json or "[]"):
        hops = route.get("nexthops") or [route]
        gateways += [str(ipaddress.ip_address(h["gateway"])) for h in hops if "gateway" in h]
    return gateways


def fib_nexthops(dep: Deployment, topology: Topology, router: str, vip: str) -> list[str]:
    """The LB nodes `router`'s kernel forwards `vip` to, in its next-hop order."""
    address = next(v.ip for v in topology.vips if v.name == vip)
    family = "-6" if ipaddress.ip_address(str(address)).version == 6 else "-4"
    result = dep.in_netns(router, "ip", "-j", family, "route", "show", str(address))
    if not result.ok:
        raise LabError(f"{router}: ip route show {address}: {result.stderr.strip()}")
    owners = address_owners(topology.address_plan())
    return [owners.get(g, g) for g in route_gateways(result.stdout)]


def kernel_orders(dep: Deployment, topology: Topology) -> dict[str, dict[str, list[str]]]:
    return {
        vip.name: {r.name: fib_nexthops(dep, topology, r.name, vip.name) for r in topology.routers}
        for vip in topology.vips
    }


def unconverged(dep: Deployment, topology: Topology) -> dict[str, dict[str, list[str]]]:
    """vip -> router -> its kernel next hops, where they differ from every announcing LB."""
    out: dict[str, dict[str, list[str]]] = {}
    for vip in topology.vips:
        for r in topology.routers:
            hops = fib_nexthops(dep, topology, r.name, vip.name)
            if set(hops) != expected_nexthops(topology, r.name, vip.name):
                out.setdefault(vip.name, {})[r.name] = hops
    return out


def wait_converged(dep: Deployment, topology: Topology, timeout: float) -> None:
    """Poll (bounded) until every router forwards every VIP to all it should."""
    try:
        wait_for(lambda: not unconverged(dep, topology), timeout, interval=0.5)
    except TimeoutError:
        raise LabError(
            f"not converged within {timeout:g}s (vip -> router -> next hops): "
            f"{unconverged(dep, topology)}"
        ) from None


def run_flows(
    dep: Deployment,
    topology: Topology,
    flows: list[Flow],
    concurrency: int = 64,
    timeout: float = 5.0,
) -> list[Any]:
    def exec_batch(client: str, batch: str, limit: float) -> CommandResult:
        argv = ["python3", "-m", TRAFFIC_MODULE, "--ca", str(PKI_DIR / "ca.pem")]
        argv += ["--concurrency", str(concurrency), "--timeout", str(timeout)]
        return dep.exec(client, *argv, stdin=batch, timeout=limit)

    raw = per_client(flows, exec_batch, concurrency, timeout, what="traffic tool")
    owners = address_owners(topology.address_plan())
    return flow_results(flows, raw, owners, {lb.name for lb in topology.lbs}, topology)


def run_traffic(
    dep: Deployment,
    topology: Topology,
    connections: int = 300,
    *,
    first_port: int = 20000,
    sources: int = 8,
    concurrency: int = 64,
    timeout: float = 5.0,
) -> TrafficResult:
    """Send `connections` flows from the clients' containers; each result carries the LB that
    carried it and the one the simulator predicts from the routers' kernel next hops."""
    flows = plan_flows(topology, connections, first_port, sources)
    orders = kernel_orders(dep, topology)
    started = time.monotonic()
    results = run_flows(dep, topology, flows, concurrency, timeout)
    elapsed = time.monotonic() - started
    predicted = predict_held(topology, [f.five_tuple for f in flows], orders)
    for flow, result, lb in zip(flows, results, predicted, strict=True):
        result.predicted = lb
        result.expected = expected_outcome(flow, topology)
    return TrafficResult(results, orders, elapsed)
