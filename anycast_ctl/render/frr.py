"""One router's frr.conf (zebra + bgpd, integrated) from a small typed plan. Pure.

The plan says everything a router's policy depends on: which VIPs each LB peer may announce
(exact host routes, as the fewest `ge/le` ranges that accept exactly them: prefix_ranges.py;
anything else is denied), the maximum-prefix guard, the TCP-MD5 password
of every session, ECMP width, the BGP timers and the BFD profile that LB sessions are tied to
(bfdd's part of the integrated config: a `bfd` block). FRR 8.4 eBGP sends and accepts nothing
without route-maps, so every neighbor gets an explicit route-map in and out.
The per-router hashing sysctls are not FRR's business: the lab sets them on the namespace.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

import jinja2
from pydantic import AfterValidator, Field, model_validator

from anycast_ctl.config.bfd import BfdInterval, BfdMultiplier
from anycast_ctl.config.common import (
    ASN,
    HostPrefix,
    IPAddr,
    Md5Password,
    Name,
    SafeStr,
    StrictModel,
)
from anycast_ctl.render.bfdd import PROFILE, profile_lines
from anycast_ctl.render.prefix_ranges import host_ranges
from anycast_ctl.render.templating import template

ANY: Literal["any"] = "any"


def _ipv4(value: str) -> str:
    return str(ipaddress.IPv4Address(value))


def _network(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=True))


RouterId = Annotated[str, AfterValidator(_ipv4)]
Network = Annotated[str, AfterValidator(_network)]


def _family(address: str) -> int:
    return ipaddress.ip_address(address.split("/")[0]).version


class Neighbor(StrictModel):
    """One BGP session of the router, and the policy on it."""

    name: Name  # short identifier; prefix-list and route-map names derive from it
    address: IPAddr
    remote_as: ASN
    description: SafeStr = ""
    password: Md5Password
    # The exact prefixes this peer may announce to us, or "any" (router-router sessions).
    accept: Literal["any"] | tuple[HostPrefix, ...]
    max_prefix: Annotated[int, Field(ge=1, le=1_000_000)]
    is_lb: bool = False
    # GTSM (RFC 5082): `neighbor X ttl-security hops N`; FRR then sends with TTL 255 and drops
    # what arrives with TTL below 256 - N. LB sessions are one hop (directly linked).
    ttl_security_hops: Annotated[int, Field(ge=1, le=254)] | None = None
    # `neighbor X bfd profile P`: bgpd closes the session as soon as bfdd says the peer is down.
    bfd: bool = False

    @model_validator(mode="after")
    def _policy_fits_peer(self) -> Neighbor:
        if self.is_lb and self.accept == ANY:
            raise ValueError("an LB peer must list the exact VIPs it may announce, not 'any'")
        if self.accept != ANY:
            wrong = [p for p in self.accept if _family(p) != self.family]
            if wrong:
                raise ValueError(
                    f"prefixes {wrong} are not IPv{self.family} like the session address "
                    f"{self.address}: announce them over an IPv{_family(wrong[0])} session"
                )
        return self

    @property
    def family(self) -> int:
        return _family(self.address)

    @property
    def accept_entries(self) -> list[str]:
        """The prefix-list permits: the fewest ranges that accept exactly `accept`."""
        return [r.entry() for r in host_ranges(() if self.accept == ANY else self.accept)]

    @property
    def exports(self) -> bool:
        # Routers pass routes on to each other; LB nodes need nothing from us (default route).
        return not self.is_lb


class BfdProfile(StrictModel):
    """The router's BFD profile for its LB sessions (bfdd's `profile`, render/bfdd.PROFILE)."""

    interval_ms: BfdInterval
    multiplier: BfdMultiplier

    @property
    def name(self) -> str:
        return PROFILE

    @property
    def detection_ms(self) -> int:
        return self.interval_ms * self.multiplier


class RouterPlan(StrictModel):
    """Everything frr.conf of one router says."""

    name: Name
    asn: ASN
    router_id: RouterId
    neighbors: tuple[Neighbor, ...] = ()
    maximum_paths: Annotated[int, Field(ge=1, le=128)] = 16
    keepalive: Annotated[int, Field(ge=1, le=3600)] = 1
    hold: Annotated[int, Field(ge=3, le=65535)] = 3
    connect_retry: Annotated[int, Field(ge=1, le=65535)] = 1
    # Prefixes this router originates (they must be in its RIB, e.g. connected client subnets).
    networks: tuple[Network, ...] = ()
    bfd: BfdProfile | None = None  # needed by every neighbor with `bfd`

    @model_validator(mode="after")
    def _consistent(self) -> RouterPlan:
        if self.hold < 3 * self.keepalive:
            raise ValueError(
                f"hold ({self.hold}s) must be at least 3 x keepalive ({self.keepalive}s)"
            )
        for attr, plural in (("name", "names"), ("address", "addresses")):
            values = [getattr(n, attr) for n in self.neighbors]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"neighbor {plural} must be unique; repeated: {', '.join(dupes)}")
        if self.bfd is None and any(n.bfd for n in self.neighbors):
            raise ValueError("a neighbor with bfd needs the router's bfd profile")
        return self

    def neighbors_of(self, family: int) -> list[Neighbor]:
        return [n for n in self.neighbors if n.family == family]

    def networks_of(self, family: int) -> list[str]:
        return [n for n in self.networks if _family(n) == family]


def prefix_list_name(neighbor: Neighbor) -> str:
    return f"PL{neighbor.family}-{neighbor.name}-IN"


def route_map_name(neighbor: Neighbor, direction: Literal["IN", "OUT"]) -> str:
    return f"RM-{neighbor.name}-{direction}"


def _template() -> jinja2.Template:
    return template("frr.conf.j2")


def render_frr(plan: RouterPlan) -> str:
    """The router's integrated frr.conf; both zebra and bgpd read it with -f."""
    families = [
        {
            "afi": "ipv4" if fam == 4 else "ipv6",
            "pl_keyword": "ip" if fam == 4 else "ipv6",
            "deny_all": "0.0.0.0/0 le 32" if fam == 4 else "::/0 le 128",
            "neighbors": plan.neighbors_of(fam),
            "networks": plan.networks_of(fam),
        }
        for fam in (4, 6)
    ]
    families = [f for f in families if f["neighbors"] or f["networks"]]
    return _template().render(
        plan=plan,
        families=families,
        ANY=ANY,
        prefix_list_name=prefix_list_name,
        route_map_name=route_map_name,
        bfd_profile=(profile_lines(plan.bfd.interval_ms, plan.bfd.multiplier) if plan.bfd else []),
    )
