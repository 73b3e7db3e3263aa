"""`lab traffic`: TLS connections from the clients to the VIPs, the LB node each one reached,
and the simulator's prediction for the very same flows.

Flows are planned here (deterministic: each has its own source address and port), sent by
lab/programs/traffic_client.py running inside each client's namespace, and answered by a
backend with the address its connection came from: the link address of the LB node whose
HAProxy carried it.

Each backend also answers the client address it saw in the LB's PROXY v2 header
(`backend_saw_src`) and the LB's connection id (`connection_id`, also in the LB's HAProxy
log and the backend's log). A failed flow says why (`reason`): the traffic client's reason,
with "closed" refined by the VIP's policy into "refused-by-allow-list" (a source outside
allow_sources), "rate-limited" (an admitted source on a rate-limited VIP) or "refused-by-sni";
"tls-alert" is the backend refusing the handshake (e.g. no client certificate).

The policy is part of the prediction (`expected_outcome`, per flow `expected`): a flow from
outside allow_sources is predicted "refused-by-allow-list", one without a certificate to a VIP
requiring one "tls-alert"; such a flow is as predicted when it failed with that reason, so
`lab traffic` exits 0 when everything happened as the policy says. Rate limits are not
predicted per flow: a rate-limited flow counts against the agreement (exit 1).

The prediction is the simulator's (sim/predict.py `predict_held`), given the kernel's own
next hops, read per router and per VIP from the FIB: hash-threshold maps a hash to the i-th
next hop, so the members and their order decide the LB.
"""

from __future__ import annotations

import ipaddress
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from anycast_ctl.config.topology import Topology
from anycast_ctl.errors import Problem, UserError
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.observe.expect import address_owners
from anycast_ctl.lab.programs.backend import parse_answer
from anycast_ctl.render.node_files import client_cert_file, client_key_file
from anycast_ctl.sim.predict import FlowTuple, predict_held

PROTO_TCP = 6
OK = "ok"
Orders = dict[str, dict[str, list[str]]]  # vip -> router -> next hops in the kernel's order


@dataclass(frozen=True)
class Flow:
    client: str
    vip: str
    src: str
    sport: int
    dst: str
    dport: int
    server_name: str

    @property
    def five_tuple(self) -> FlowTuple:
        return (self.src, self.dst, PROTO_TCP, self.sport, self.dport)


@dataclass
class FlowResult:
    client: str
    vip: str
    src: str
    sport: int
    dst: str
    dport: int
    ok: bool
    backend: str | None = None
    peer: str | None = None
    lb: str | None = None
    predicted: str | None = None
    error: str | None = None
    seconds: float | None = None
    backend_saw_src: str | None = None  # the client address in the LB's PROXY v2 header
    connection_id: str | None = None  # the LB's id of this connection (its log, the backend's)
    reason: str | None = None  # why it failed (module docstring); None when ok
    server_name: str | None = None  # the TLS name the client sent (SNI)
    expected: str = OK  # what the VIP's policy says: "ok" or the refusal (expected_outcome)

    @property
    def agrees(self) -> bool:
        """As predicted: admitted by the LB the simulator named, or refused as the policy says."""
        if self.expected != OK:
            return not self.ok and self.reason == self.expected
        return self.ok and self.lb is not None and self.lb == self.predicted


@dataclass
class TrafficResult:
    flows: list[FlowResult]
    nexthop_order: dict[str, dict[str, list[str]]] = field(
        default_factory=dict
    )  # vip -> router -> order
    seconds: float = 0.0

    def shares(self) -> dict[str, int]:
        """LB -> connections it carried (every LB of the topology that carried any)."""
        return dict(sorted(Counter(f.lb for f in self.flows if f.ok and f.lb).items()))

    def predicted_shares(self) -> dict[str, int]:
        return dict(sorted(Counter(f.predicted for f in self.flows if f.predicted).items()))

    def agreement(self) -> tuple[int, int]:
        return sum(f.agrees for f in self.flows), len(self.flows)

    def mismatches(self) -> list[FlowResult]:
        """Flows not as predicted: another LB than the simulator's, or not what the policy
        says (refused when it admits, admitted or refused otherwise when it refuses)."""
        return [f for f in self.flows if (f.ok or f.expected != OK) and not f.agrees]

    def failed(self) -> list[FlowResult]:
        return [f for f in self.flows if not f.ok]

    def to_json(self) -> dict:
        agree, total = self.agreement()
        return {
            "connections": total,
            "ok": total - len(self.failed()),
            "failed": len(self.failed()),
            "as_predicted": agree,
            "shares": self.shares(),
            "predicted_shares": self.predicted_shares(),
            "nexthop_order": self.nexthop_order,
            "seconds": round(self.seconds, 3),
            "flows": [asdict(f) for f in self.flows],
        }


# ---------------------------------------------------------------- planning (pure)
def plan_flows(
    topo: Topology, connections: int, first_port: int = 20000, sources: int = 8
) -> list[Flow]:
    """`connections` flows spread round-robin over every (client, VIP) pair of one family.

    Flow i: pair i % P; source = host ((i // P) % sources) + 1 of the client's prefix;
    source port = first_port + i; TLS name the VIP's, or its SNI route names in turn. The same
    arguments always give the same flows.
    """
    pairs = [(c, v) for v in topo.vips for c in topo.clients if c.prefix(v.version) is not None]
    problems = []
    if not pairs:
        problems.append(("clients", "no client has a prefix of a VIP's address family"))
    if connections < 1:
        problems.append(("connections", f"{connections}: must be at least 1"))
    if not first_port >= 1024 or first_port + connections - 1 > 65535:
        problems.append(
            (
                "first_port",
                f"ports {first_port}..{first_port + connections - 1} must lie in 1024..65535",
            )
        )
    if sources < 1:
        problems.append(("sources", f"{sources}: must be at least 1"))
    if problems:
        raise UserError([Problem("<traffic>", where, what) for where, what in problems])
    flows = []
    for i in range(connections):
        client, vip = pairs[i % len(pairs)]
        prefix = client.prefix(vip.version)
        assert prefix is not None  # `pairs` holds only clients with a prefix of the VIP's family
        usable = max(1, prefix.num_addresses - 2)
        src = prefix.network_address + 1 + ((i // len(pairs)) % min(sources, usable))
        # An SNI-routed VIP's flows take its route names in turn, so every route is exercised.
        names = [r.server_name for r in vip.sni_routes] if vip.sni_routes else [vip.tls_name]
        name = names[(i // len(pairs)) % len(names)]
        flows.append(
            Flow(client.name, vip.name, str(src), first_port + i, str(vip.ip), vip.port, name)
        )
    return flows


def expected_outcome(flow: Flow, topo: Topology, client_cert: bool = True) -> str:
    """What the VIP's policy does with the flow (pure): "refused-by-allow-list" for a source
    outside allow_sources, "tls-alert" for a flow without a certificate to a VIP requiring
    one, else "ok". A rate limit is not predicted per flow (it depends on timing): a flow
    refused by it counts as not as predicted."""
    vip = topo.vip(flow.vip)
    src = ipaddress.ip_address(flow.src)
    if vip.allow_sources is not None and not any(
        src in ipaddress.ip_network(p) for p in vip.allow_sources
    ):
        return "refused-by-allow-list"
    if vip.client_certificates == "required" and not client_cert:
        return "tls-alert"
    return OK


def refine_reason(reason: str | None, flow: Flow, topo: Topology) -> str | None:
    """A "closed" (the LB refused) flow's likely cause from the VIP's policy (pure)."""
    if reason != "closed":
        return reason
    vip = topo.vip(flow.vip)
    src = ipaddress.ip_address(flow.src)
    if vip.allow_sources is not None and not any(
        src in ipaddress.ip_network(p) for p in vip.allow_sources
    ):
        return "refused-by-allow-list"
    if vip.rate_limit is not None:
        return "rate-limited"
    if vip.sni_routes is not None:
        return "refused-by-sni"
    return "closed"


def _reason(reason: str | None, flow: Flow, topo: Topology | None) -> str | None:
    return refine_reason(reason, flow, topo) if topo is not None else reason


def saw_address(endpoint: str | None) -> str | None:
    """'198.18.1.7:20001' or '[2001:db8::7]:20001' -> the address; None if absent."""
    if not endpoint or endpoint == "None":
        return None
    host = endpoint.rpartition(":")[0]
    return host.strip("[]") or None


def lb_of_peer(peer: str | None, owners: dict[str, str], lbs: set[str]) -> str | None:
    """'100.64.0.9:40112' -> the LB node holding 100.64.0.9 (None when no LB does)."""
    if not peer:
        return None
    host = peer.rpartition(":")[0].strip("[]")
    try:
        owner = owners.get(str(ipaddress.ip_address(host)))
    except ValueError:
        return None
    return owner if owner in lbs else None


# ---------------------------------------------------------------- running (I/O)
TRAFFIC_CLIENT = "anycast_ctl.lab.programs.traffic_client"


class BatchRun(Protocol):
    """What running one client's batch gives back (daemons.CommandResult has this shape)."""

    @property
    def ok(self) -> bool: ...
    @property
    def returncode(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


# (client, its flows as the traffic client's JSON stdin, time limit in seconds) -> its run
ExecBatch = Callable[[str, str, float], BatchRun]


def per_client(
    flows: list[Flow],
    exec_batch: ExecBatch,
    concurrency: int,
    timeout: float,
    *,
    what: str = "traffic client",
) -> list[dict[str, Any] | None]:
    """Each client's flows as one batch run by `exec_batch` (the clients in parallel): the
    traffic client's answers in flow order, None where a client answered fewer flows than it
    was given ("no result" in flow_results). A run that fails raises LabError naming `what`
    and the client; the time limit allows every round of `concurrency` flows its timeout
    three times over, plus start-up."""
    by_client: dict[str, list[int]] = {}
    for i, flow in enumerate(flows):
        by_client.setdefault(flow.client, []).append(i)
    raw: list[dict[str, Any] | None] = [None] * len(flows)

    def one_client(client: str) -> None:
        indices = by_client[client]
        rounds = math.ceil(len(indices) / max(1, concurrency))
        batch = json.dumps([asdict(flows[i]) for i in indices])
        result = exec_batch(client, batch, 30 + rounds * timeout * 3)
        if not result.ok:
            raise LabError(
                f"{what} in {client} failed ({result.returncode}): " + result.stderr.strip()[-500:]
            )
        for i, answer in zip(indices, json.loads(result.stdout), strict=False):
            raw[i] = answer

    with ThreadPoolExecutor(max_workers=max(1, len(by_client))) as pool:
        for done in [pool.submit(one_client, c) for c in by_client]:
            done.result()
    return raw


def run_flows(
    lab: LabHandle,
    flows: list[Flow],
    concurrency: int = 64,
    timeout: float = 5.0,
    client_cert: bool = True,
) -> list[FlowResult]:
    """Send the flows (each client's from inside its namespace, clients in parallel); with
    `client_cert` each client presents its lab certificate when one was issued."""
    owners = address_owners(lab.plan)
    lbs = {lb.name for lb in lab.topology.lbs}

    def exec_batch(client: str, batch: str, limit: float) -> daemons.CommandResult:
        cert, key = lab.dir / client_cert_file(client), lab.dir / client_key_file(client)
        identity = ["--cert", str(cert), "--key", str(key)] if client_cert and cert.exists() else []
        argv = [sys.executable, "-m", TRAFFIC_CLIENT, "--ca", str(lab.ca_file)]
        argv += ["--concurrency", str(concurrency), "--timeout", str(timeout), *identity]
        return daemons.run(lab.tag, argv, netns=lab.namespace(client), stdin=batch, timeout=limit)

    raw = per_client(flows, exec_batch, concurrency, timeout, what="traffic client")
    return flow_results(flows, raw, owners, lbs, lab.topology)


def flow_results(
    flows: list[Flow],
    raw: list[dict | None],
    owners: dict[str, str],
    lbs: set[str],
    topo: Topology | None = None,
) -> list[FlowResult]:
    """The traffic client's answers (None: none came) -> one result per flow (pure)."""
    out = []
    for flow, answer in zip(flows, raw, strict=True):
        answer = answer or {"ok": False, "error": "no result"}
        fields = parse_answer(answer.get("line") or "")
        ok = bool(answer.get("ok")) and bool(fields)
        out.append(
            FlowResult(
                client=flow.client,
                vip=flow.vip,
                src=flow.src,
                sport=flow.sport,
                dst=flow.dst,
                dport=flow.dport,
                ok=ok,
                backend=fields.get("backend"),
                peer=fields.get("peer"),
                lb=lb_of_peer(fields.get("peer"), owners, lbs),
                error=answer.get("error")
                or (None if ok else f"unexpected answer {answer.get('line')!r}"),
                seconds=answer.get("seconds"),
                backend_saw_src=saw_address(fields.get("client")),
                connection_id=fields.get("id") if fields.get("id") != "None" else None,
                reason=None if ok else _reason(answer.get("reason", "error"), flow, topo),
                server_name=flow.server_name,
            )
        )
    return out


def kernel_orders(lab: LabHandle) -> dict[str, dict[str, list[str]]]:
    """vip -> router -> next hops in the kernel's order (node names)."""
    return {
        vip.name: {r.name: lab.fib_nexthops(r.name, vip.name) for r in lab.topology.routers}
        for vip in lab.topology.vips
    }


def run_traffic(
    lab: LabHandle,
    connections: int = 300,
    *,
    first_port: int = 20000,
    sources: int = 8,
    concurrency: int = 64,
    timeout: float = 5.0,
    client_cert: bool = True,
    clock=time.monotonic,
) -> TrafficResult:
    flows = plan_flows(lab.topology, connections, first_port, sources)
    orders = kernel_orders(lab)
    started = clock()
    results = run_flows(lab, flows, concurrency, timeout, client_cert)
    elapsed = clock() - started
    predicted = predict_held(lab.topology, [f.five_tuple for f in flows], orders)
    for flow, result, lb in zip(flows, results, predicted, strict=True):
        result.predicted = lb
        result.expected = expected_outcome(flow, lab.topology, client_cert)
    return TrafficResult(results, orders, elapsed)
