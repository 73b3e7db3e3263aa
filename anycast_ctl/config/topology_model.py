"""The topology's fields and lookups: routers in tiers, LB nodes, backends, clients, links, VIPs.

This is the layer the address plan (`address_plan.py`) and the cross-field checks
(`topology_checks.py`) are built on; `topology.py` puts the three together as `Topology`.
Traffic flows client -> first tier -> ... -> last tier -> LB node -> backend; links join only
neighbouring layers, so the router graph is a DAG by construction and every check can name the
exact field that breaks it.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator

from anycast_ctl.config.bfd import TopologyBfd
from anycast_ctl.config.common import (
    ASN,
    U32,
    Md5Password,
    Name,
    Port,
    SafeStr,
    StrictModel,
    VipPrefix,
)
from anycast_ctl.config.edge_policy import EdgePolicy
from anycast_ctl.config.topology_certificates import CertificateSettings
from anycast_ctl.config.topology_chance import TopologyChance

# Interface names are "eth-<peer>" and Linux allows 15 characters: 4 + 11.
NodeName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,10}$")]

# A fixed, non-zero seed: with net.ipv4.fib_multipath_hash_seed = 0 Linux draws a random key
# at boot and no flow can be predicted.
DEFAULT_SEED = 0x5EED
DEFAULT_FIELDS = 0x37  # src IP, dst IP, IP proto, src port, dst port
LINUX_FIELDS_MASK = 0x0FFF  # every bit net.ipv4.fib_multipath_hash_fields knows (outer + inner)
MAX_MAGLEV_TABLE = 1_000_003


def _int_or_hex(value: object) -> object:
    # YAML reads 0x37 as 55 already; this also accepts the quoted "0x37" people copy from the
    # sysctl docs.
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return value
    return value


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


class Algorithm(StrEnum):
    MODULO = "modulo"  # hash mod N: simplest, moves (N-1)/N of flows on any change
    HASH_THRESHOLD = "hash-threshold"  # RFC 2992; Linux and FRR's kernel ECMP
    RENDEZVOUS = "rendezvous"  # highest random weight, RFC 2991
    RESILIENT = "resilient"  # Linux resilient nexthop groups: a bucket table
    MAGLEV = "maglev"  # Google's Maglev lookup table
    LINUX = "linux"  # kernel-exact Linux IPv4 multipath (SipHash + hash-threshold)


class Hashing(StrictModel):
    """How one router picks among equal-cost next hops.

    At topology level every field has a default; under a router only the fields written
    there override the topology-wide values (see `Topology.hashing_for`).
    """

    algorithm: Algorithm = Algorithm.LINUX
    seed: Annotated[U32, BeforeValidator(_int_or_hex)] = DEFAULT_SEED
    # net.ipv4.fib_multipath_hash_policy: 0 = L3, 1 = L4 5-tuple, 3 = custom fields. 2 (inner L3)
    # is accepted here only to be refused with an explanation by the topology checks.
    policy: Literal[0, 1, 2, 3] = 3
    fields: Annotated[int, BeforeValidator(_int_or_hex), Field(ge=1, le=LINUX_FIELDS_MASK)] = (
        DEFAULT_FIELDS
    )
    # Next-hop weights by neighbour name (Linux `nexthop ... weight W`, 1-256); missing = 1.
    weights: dict[NodeName, Annotated[int, Field(ge=1, le=256)]] = {}
    buckets: Annotated[int, Field(ge=1, le=65535)] = 128  # resilient: Linux's default table size
    table_size: Annotated[int, Field(ge=3, le=MAX_MAGLEV_TABLE)] = 65537  # maglev: must be prime

    @field_validator("table_size")
    @classmethod
    def _prime(cls, value: int) -> int:
        if not is_prime(value):
            raise ValueError(
                f"{value} is not prime; Maglev's permutation needs a prime table size"
                " (e.g. 251, 4099, 65537)"
            )
        return value


class BgpPolicy(StrictModel):
    """Session defaults for every BGP session (router-router and router-LB)."""

    md5_password: Md5Password | None = None
    hold_time: Annotated[int, Field(ge=3, le=65535)] = 9
    # Per LB peer: more prefixes than this from one LB tears the session down.
    maximum_prefix: Annotated[int, Field(ge=1, le=100000)] = 10


class Addressing(StrictModel):
    """Pools for the deterministic address plan (links get /31 and /127 in link order)."""

    ipv4: Annotated[str, Field(description="IPv4 pool, at most /23")] = "100.64.0.0/16"
    ipv6: Annotated[str, Field(description="IPv6 pool, at most /63; used when a VIP is IPv6")] = (
        "fd00:64::/48"
    )

    @field_validator("ipv4")
    @classmethod
    def _v4_pool(cls, value: str) -> str:
        return _pool(value, 4, 23)

    @field_validator("ipv6")
    @classmethod
    def _v6_pool(cls, value: str) -> str:
        return _pool(value, 6, 63)


def _pool(value: str, version: int, longest: int) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a network: {exc}") from None
    if net.version != version:
        raise ValueError(f"must be an IPv{version} network")
    if net.prefixlen > longest:
        raise ValueError(f"/{net.prefixlen} is too small: the pool must be /{longest} or larger")
    return str(net)


class Router(StrictModel):
    name: NodeName
    asn: ASN
    tier: Name
    hashing: Hashing | None = None  # only the fields written here override `Topology.hashing`


class LoadBalancer(StrictModel):
    name: NodeName
    asn: ASN
    vips: list[Name] = []  # VIP names this node announces
    maximum_prefix: Annotated[int, Field(ge=1, le=100000)] | None = (
        None  # overrides bgp.maximum_prefix
    )


class Backend(StrictModel):
    """A TLS server behind the LB nodes; it holds the certificate, the LBs pass TLS through."""

    name: NodeName
    port: Port = 443


def _client_prefix(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"not a network prefix: {exc}") from None


class Client(StrictModel):
    name: NodeName
    # Source prefixes for generated flows and lab traffic: at most one IPv4 and one IPv6.
    prefixes: Annotated[
        list[Annotated[str, BeforeValidator(_client_prefix)]], Field(min_length=1, max_length=2)
    ]
    weight: Annotated[float, Field(gt=0)] = (
        1.0  # share of generated flows, relative to other clients
    )

    def prefix(self, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        for p in self.prefixes:
            net = ipaddress.ip_network(p)
            if net.version == version:
                return net
        return None


class Vip(EdgePolicy):
    """A service address; its edge policy fields (allow_sources, ...) are in edge_policy.py."""

    name: Name
    address: VipPrefix  # normalized to a host route: "192.0.2.10/32"
    port: Port = 443
    backends: Annotated[list[NodeName], Field(min_length=1)]
    server_name: SafeStr | None = None  # TLS name; defaults to "<name>.anycast.test"

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_network(self.address).network_address

    @property
    def version(self) -> int:
        return self.ip.version

    @property
    def tls_name(self) -> str:
        """The name clients send; with SNI routes, the first route's unless one is chosen."""
        if self.server_name:
            return self.server_name
        if self.sni_routes:
            return self.sni_routes[0].server_name
        return f"{self.name}.anycast.test"

    def tls_names_of(self, backend: str) -> list[str]:
        """The TLS names `backend` answers for this VIP (its certificate must carry them)."""
        if not self.sni_routes:
            return [self.tls_name] if backend in self.backends else []
        return [r.server_name for r in self.sni_routes if backend in r.backends]


class Link(StrictModel):
    a: NodeName
    b: NodeName
    md5_password: Md5Password | None = None  # overrides bgp.md5_password


NodeKind = Literal["router", "lb", "backend", "client"]


class TopologyModel(StrictModel):
    """A topology file's content and name lookups; `Topology` adds the checks and the plan."""

    name: Name = "topology"
    description: SafeStr = ""
    tiers: Annotated[list[Name], Field(min_length=1)]  # router tiers, clients' side first
    hashing: Hashing = Hashing()
    bgp: BgpPolicy = BgpPolicy()
    bfd: TopologyBfd = TopologyBfd()  # on every router-LB session (config/bfd.py)
    addressing: Addressing = Addressing()
    certificates: CertificateSettings = CertificateSettings()
    routers: Annotated[list[Router], Field(min_length=1)]
    lbs: Annotated[list[LoadBalancer], Field(min_length=1)]
    backends: list[Backend] = []
    clients: Annotated[list[Client], Field(min_length=1)]
    vips: Annotated[list[Vip], Field(min_length=1)]
    links: Annotated[list[Link], Field(min_length=1)]
    second_chance: TopologyChance = TopologyChance()
    _source: str = PrivateAttr(default="<topology>")  # the file it was read from, for messages

    @property
    def source(self) -> str:
        return self._source

    # ------------------------------------------------------------ lookups
    @cached_property
    def kinds(self) -> dict[str, NodeKind]:
        out: dict[str, NodeKind] = {}
        for kind, nodes in (
            ("router", self.routers),
            ("lb", self.lbs),
            ("backend", self.backends),
            ("client", self.clients),
        ):
            for node in nodes:
                out.setdefault(node.name, kind)  # type: ignore[arg-type]
        return out

    def kind(self, name: str) -> NodeKind:
        return self.kinds[name]

    def router(self, name: str) -> Router:
        return next(r for r in self.routers if r.name == name)

    def lb(self, name: str) -> LoadBalancer:
        return next(lb for lb in self.lbs if lb.name == name)

    @cached_property
    def _vips_by_name(self) -> dict[str, Vip]:
        # lookups by name run per VIP per node: a scan would make 1,000 VIPs cost 10^6 steps
        return {v.name: v for v in reversed(self.vips)}  # the first of a duplicated name wins

    def vip(self, name: str) -> Vip:
        return self._vips_by_name[name]

    def client(self, name: str) -> Client:
        return next(c for c in self.clients if c.name == name)

    def tier_index(self, node: str) -> int:
        """Layer of a node: clients -1, routers their tier (0..), LBs len(tiers), backends +1."""
        kind = self.kind(node)
        if kind == "router":
            return self.tiers.index(self.router(node).tier)
        return {"client": -1, "lb": len(self.tiers), "backend": len(self.tiers) + 1}[kind]

    def neighbors(self, node: str) -> list[str]:
        """Every node linked to `node`, in link order."""
        out = []
        for link in self.links:
            if link.a == node:
                out.append(link.b)
            elif link.b == node:
                out.append(link.a)
        return out

    def downstream(self, node: str) -> list[str]:
        """Neighbours one layer closer to the LBs (routers of the next tier, or LBs), in link order.

        This order is the simulator's next-hop order; for the `linux` model the lab may pass
        the kernel's actual order instead.
        """
        here = self.tier_index(node)
        return [
            n
            for n in self.neighbors(node)
            if self.tier_index(n) == here + 1 and self.kind(n) in ("router", "lb")
        ]

    def announcers(self, vip_name: str) -> list[str]:
        """LB nodes that announce the VIP, in `lbs` order."""
        return [lb.name for lb in self.lbs if vip_name in lb.vips]

    def hashing_for(self, router: str) -> Hashing:
        """The router's effective hashing: topology defaults with the router's own fields on top."""
        own = self.router(router).hashing
        if own is None:
            return self.hashing
        return self.hashing.model_copy(update={f: getattr(own, f) for f in own.model_fields_set})

    def md5_for(self, link: Link) -> str | None:
        return link.md5_password or self.bgp.md5_password

    def maximum_prefix_for(self, lb: str) -> int:
        return self.lb(lb).maximum_prefix or self.bgp.maximum_prefix

    def routers_in(self, tier: str) -> list[str]:
        return [r.name for r in self.routers if r.tier == tier]

    @property
    def needs_ipv6(self) -> bool:
        return any(v.version == 6 for v in self.vips)
