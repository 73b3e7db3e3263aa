"""The agent's per-node config: VIPs, their checks and BGP attributes, timing, control socket.

One YAML file per LB node. `anycast-ctl config check FILE` validates it; `config schema`
prints the JSON Schema for editors.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from anycast_ctl.config.bfd import NodeBfd
from anycast_ctl.config.common import (
    ASN,
    U32,
    Md5Secret,
    Name,
    Port,
    RouterId,
    StrictModel,
    UnicastIP,
    VipPrefix,
)
from anycast_ctl.config.loading import load_model
from anycast_ctl.config.node_chance import SecondChance as SecondChance
from anycast_ctl.config.node_checks import (
    Check as Check,
    ExecCheck as ExecCheck,
    HaproxyCheck as HaproxyCheck,
    HttpCheck as HttpCheck,
    ListeningCheck as ListeningCheck,
    TcpCheck as TcpCheck,
    TlsCheck as TlsCheck,
)
from anycast_ctl.config.node_timing import (
    FlapDamping as FlapDamping,
    Lifeline as Lifeline,
    Timing as Timing,
)


# ---------------------------------------------------------------- BGP
class Neighbor(StrictModel):
    address: UnicastIP
    local_address: UnicastIP
    peer_as: ASN
    md5_password: Md5Secret | None = None
    hold_time: Annotated[int, Field(ge=3, le=65535)] = 9
    # GTSM (RFC 5082): send with TTL 255 and accept only packets that crossed at most this
    # many hops (1: directly connected); the router must set `ttl-security hops` alike.
    ttl_security_hops: Annotated[int, Field(ge=1, le=254)] | None = None

    @model_validator(mode="after")
    def _same_family(self) -> Neighbor:
        if (
            ipaddress.ip_address(self.address).version
            != ipaddress.ip_address(self.local_address).version
        ):
            raise ValueError("address and local_address must be the same IP version")
        if self.address == self.local_address:
            raise ValueError(
                f"address {self.address} is local_address, the node itself: "
                "address is the router's end of the session"
            )
        return self


class Bgp(StrictModel):
    local_as: ASN
    router_id: RouterId
    neighbors: Annotated[list[Neighbor], Field(min_length=1)]


_COMMUNITY = re.compile(r"^(\d+):(\d+)$")
_WELL_KNOWN = {"no-export", "no-advertise", "no-export-subconfed", "graceful-shutdown", "blackhole"}
_LARGE = re.compile(r"^(\d+):(\d+):(\d+)$")
_EXTENDED = re.compile(r"^(target|origin):(\d+(?:\.\d+){0,3}):(\d+)$")


def _community(value: str) -> str:
    if value in _WELL_KNOWN:
        return value
    m = _COMMUNITY.match(value)
    if not m or any(int(part) > 65535 for part in m.groups()):
        raise ValueError(
            f"{value!r} is not a community (ASN:VALUE, each 0-65535, or a well-known name)"
        )
    return value


def _large_community(value: str) -> str:
    m = _LARGE.match(value)
    if not m or any(int(part) > 4294967295 for part in m.groups()):
        raise ValueError(f"{value!r} is not a large community (A:B:C, each 0-4294967295)")
    return value


def _extended_community(value: str) -> str:
    if not _EXTENDED.match(value):
        raise ValueError(f"{value!r} is not an extended community (target:ASN:N or origin:ASN:N)")
    return value


class Vip(StrictModel):
    address: VipPrefix
    checks: Annotated[list[Name], Field(min_length=1)]
    combine: Literal["all", "any"] = "all"
    next_hop: Literal["self"] | UnicastIP = "self"
    med: U32 | None = None
    local_preference: U32 | None = None
    communities: list[str] = []
    large_communities: list[str] = []
    extended_communities: list[str] = []
    as_path_prepend: Annotated[int, Field(ge=0, le=10)] = 0
    path_id: U32 | None = None
    timing: Timing | None = None  # overrides the node-wide timing for this VIP

    @field_validator("communities")
    @classmethod
    def _communities(cls, values: list[str]) -> list[str]:
        return [_community(v) for v in values]

    @field_validator("large_communities")
    @classmethod
    def _large(cls, values: list[str]) -> list[str]:
        return [_large_community(v) for v in values]

    @field_validator("extended_communities")
    @classmethod
    def _extended(cls, values: list[str]) -> list[str]:
        return [_extended_community(v) for v in values]

    @model_validator(mode="after")
    def _next_hop_family(self) -> Vip:
        if self.next_hop != "self":
            vip_version = ipaddress.ip_network(self.address).version
            if ipaddress.ip_address(self.next_hop).version != vip_version:
                raise ValueError("next_hop must be the same IP version as the VIP address")
        return self


# ---------------------------------------------------------------- node-local behaviour
class LoopbackMode(StrEnum):
    ALWAYS = "always"  # add every VIP at start, keep it while the agent runs
    WHILE_UP = "while_up"  # add a VIP only while it is announced


class Loopback(StrictModel):
    manage: bool = True
    interface: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,15}$")] = "lo"
    mode: LoopbackMode = LoopbackMode.ALWAYS
    # With mode while_up: remove the address when the VIP is withdrawn.
    remove_on_withdraw: bool = True


MAX_SOCKET_PATH = 107  # sockaddr_un.sun_path holds 108 bytes including the terminating NUL
DEFAULT_SOCKET = Path("/run/anycast-ctl/agent.sock")
# Where an LB node's config is installed (docs/systemd/anycast-exabgp.service runs it): the
# control commands read its control.socket, so they find the socket `render node` wrote.
DEFAULT_CONFIG = Path("/etc/anycast-ctl/node.yaml")


def _absolute_file(value: object) -> Path:
    # Before pydantic makes a Path of it: Path("") is "." and Path("/a/") drops the slash.
    if not isinstance(value, str | Path):
        raise ValueError("must be a path (text)")
    text = str(value)
    if not text.strip():
        raise ValueError("must not be empty")
    if not Path(text).is_absolute():
        raise ValueError(
            f"{text!r} must be an absolute path (the agent may run from any directory)"
        )
    if text.endswith("/"):
        raise ValueError(f"{text!r} names a directory; give a file name")
    return Path(text)


def _socket_path(value: object) -> Path:
    path = _absolute_file(value)
    size = len(str(path).encode())
    if size > MAX_SOCKET_PATH:
        raise ValueError(
            f"{size} bytes is longer than the {MAX_SOCKET_PATH} a Unix socket path may have"
        )
    return path


AbsoluteFile = Annotated[Path, BeforeValidator(_absolute_file)]
SocketPath = Annotated[Path, BeforeValidator(_socket_path)]


class Control(StrictModel):
    socket: SocketPath = DEFAULT_SOCKET
    allow_uids: list[Annotated[int, Field(ge=0)]] = [0]
    allow_groups: list[
        Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")] | Annotated[int, Field(ge=0)]
    ] = []


class Drain(StrictModel):
    state_file: AbsoluteFile = Path("/var/lib/anycast-ctl/drain.json")
    # Before withdrawing a drained VIP, re-announce it with GRACEFUL_SHUTDOWN (RFC 8326)
    # for this long, so routers move traffic away before the route disappears. 0 = off.
    graceful_shutdown_seconds: Annotated[float, Field(ge=0, le=3600)] = 0


class Metrics(StrictModel):
    enabled: bool = False
    listen_host: Literal["127.0.0.1", "::1", "localhost"] = "127.0.0.1"
    listen_port: Port = 9567


class Events(StrictModel):
    """Hard failures learnt from the kernel at once, beside the checks' ticks (docs/agent.md)."""

    # A listener that a tcp/tls/http check connects to (or a `listening` check looks up)
    # closing runs those checks at once, from the kernel's socket-destroy broadcasts. The
    # agent wakes only for listeners (a socket filter), but the kernel then builds a
    # message for every TCP socket freed in the namespace: ~5 us each, measured, about 1 %
    # of a core per 1,000 proxied connections a second, on a busy LB node forever. Off (the
    # default): a closed listener is found at the next tick, within 0.1 s at the recommended
    # interval; on pays where checks are slow.
    listeners: bool = False


ExabgpDialect = Literal["4.2", "5.0"]


class Exabgp(StrictModel):
    dialect: ExabgpDialect = "5.0"


Days = Annotated[float, Field(ge=0, le=3650)]


class Certificates(StrictModel):
    """Expiry policy for every certificate a TLS check sees (agent/checks/cert_policy.py).

    Below `warn_days` the agent logs a warning and the check's status says "expiring" (still
    healthy). Below this node's withdraw threshold the check fails (soft) and its VIPs are
    withdrawn. Nodes sharing a certificate must not all withdraw at once, so the threshold is
    staggered by the node's `slot` among the `slots` nodes that share it:
    `withdraw_days * (slots - 1 - slot) / (slots - 1)`. Slot 0 leaves at `withdraw_days`, the
    others evenly later, and the last slot never leaves early: it serves until the certificate
    has expired (when the handshake fails anyway). Unset, the slot comes from a hash of the
    node name among 8, which staggers without that guarantee; set both for it.
    """

    warn_days: Days = 30
    withdraw_days: Days = 0  # 0: never withdraw for nearing expiry, only once expired
    slot: Annotated[int, Field(ge=0, le=999)] | None = None
    slots: Annotated[int, Field(ge=1, le=1000)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Certificates:
        if self.withdraw_days > self.warn_days:
            raise ValueError(
                f"withdraw_days ({self.withdraw_days:g}) exceeds warn_days ({self.warn_days:g}):"
                " a node would withdraw before anyone was warned"
            )
        if (self.slot is None) != (self.slots is None):
            raise ValueError("set slot and slots together (or neither: a hash of the node name)")
        if self.slot is not None and self.slots is not None and self.slot >= self.slots:
            raise ValueError(f"slot {self.slot} is not below slots {self.slots}")
        return self


class NodeConfig(StrictModel):
    node: Name
    bgp: Bgp
    bfd: NodeBfd = NodeBfd()  # the node's bfdd, beside ExaBGP (config/bfd.py)
    exabgp: Exabgp = Exabgp()
    timing: Timing = Timing()
    damping: FlapDamping = FlapDamping()
    checks: Annotated[dict[Name, Check], Field(min_length=1)]
    vips: Annotated[list[Vip], Field(min_length=1)]
    loopback: Loopback = Loopback()
    control: Control = Control()
    drain: Drain = Drain()
    metrics: Metrics = Metrics()
    events: Events = Events()
    certificates: Certificates = Certificates()
    lifeline: Lifeline = Lifeline()
    second_chance: SecondChance = SecondChance()

    def cross_check(self) -> list[tuple[str, str]]:
        """Problems that span fields, as (field path, message); run by the loader."""
        problems = []
        first: dict[str, int] = {}
        for i, n in enumerate(self.bgp.neighbors):
            where = f"bgp.neighbors[{i}].address"
            if n.address == self.bgp.router_id:
                problems.append(
                    (where, f"{n.address} is bgp.router_id: a node does not peer with itself")
                )
            elif n.address in first:
                problems.append(
                    (where, f"{n.address} is already bgp.neighbors[{first[n.address]}]")
                )
            first.setdefault(n.address, i)
        problems += self._bfd_problems()
        own = {self.bgp.router_id: "bgp.router_id"}
        for i, n in enumerate(self.bgp.neighbors):
            own.setdefault(n.address, f"bgp.neighbors[{i}].address")
            own.setdefault(n.local_address, f"bgp.neighbors[{i}].local_address")
        seen: set[str] = set()
        for i, vip in enumerate(self.vips):
            if vip.address in seen:
                problems.append((f"vips[{i}].address", f"{vip.address} is declared twice"))
            seen.add(vip.address)
            host = str(ipaddress.ip_network(vip.address).network_address)
            if host in own:
                problems.append(
                    (
                        f"vips[{i}].address",
                        f"{host} is {own[host]}: a VIP must not be a peering or router-id address",
                    )
                )
            for j, name in enumerate(vip.checks):
                if name not in self.checks:
                    known = ", ".join(sorted(self.checks))
                    problems.append(
                        (f"vips[{i}].checks[{j}]", f"no check named {name!r} (known: {known})")
                    )
                    continue
                own_timeout = self.checks[name].timeout
                interval = self.timing_for(vip).interval
                if own_timeout is not None and own_timeout > interval:
                    problems.append(
                        (
                            f"checks.{name}.timeout",
                            f"{own_timeout}s exceeds the interval of vips[{i}] ({interval}s): "
                            "runs would overlap",
                        )
                    )
        problems += self._chance_problems()
        return problems

    def _chance_problems(self) -> list[tuple[str, str]]:
        chance, problems = self.second_chance, []
        for i, peer in enumerate(chance.peers):
            if peer.name == self.node:
                problems.append((f"second_chance.peers[{i}].name", "a node is not its own peer"))
        hosts = {str(ipaddress.ip_network(v.address).network_address) for v in self.vips}
        for i, vip in enumerate(chance.vips):
            if vip.address not in hosts:
                problems.append(
                    (f"second_chance.vips[{i}].address", f"{vip.address} is not a VIP of this node")
                )
        return problems

    def _bfd_problems(self) -> list[tuple[str, str]]:
        if not self.bfd.enabled:
            return []
        return [
            (
                "bfd.interval_ms",
                f"BFD detects a dead peer in {self.bfd.detection_ms} ms (interval_ms x "
                f"multiplier), not before bgp.neighbors[{i}].hold_time ({n.hold_time} s) would",
            )
            for i, n in enumerate(self.bgp.neighbors)
            if self.bfd.detection_ms >= n.hold_time * 1000
        ]

    def timing_for(self, vip: Vip) -> Timing:
        return vip.timing or self.timing

    def check_timeout(self, check_name: str, vip: Vip) -> float:
        return self.checks[check_name].timeout or self.timing_for(vip).timeout


def load_node_config(path: str | Path) -> NodeConfig:
    return load_model(NodeConfig, path)
