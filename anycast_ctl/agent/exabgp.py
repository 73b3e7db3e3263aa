"""ExaBGP's text API, both ways, as pure functions: typed VIPs in, command lines out; lines in,
events out.

Facts this module relies on (measured against ExaBGP 4.2.25 and 5.0.15 with FRR 8.4; see
docs/exabgp.md):

- Route commands are the same text in the 4.2 and 5.0 dialects. A line without a `neighbor`
  selector goes to every neighbor whose session carries the route's family; the others skip it.
- ExaBGP dispatches a command by *substring*: `... community [ graceful-shutdown ]` contains
  "shutdown " and stops ExaBGP 5.0.15. So every value is rendered as numbers, never as a name.
- An explicit `as-path` is sent verbatim (ExaBGP adds the local AS only when none is given), so
  prepending N times means the local AS N+1 times towards eBGP peers and N times towards iBGP.
- Extended communities are rendered as raw 8-byte hex: 4.2 encodes `target:<IPv4>:N` with the
  2-byte-AS type and 5.0 encodes `target:<4-byte ASN>:N` with the IPv4 type; hex is exact in both.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# What ExaBGP writes back lives in exabgp_events; re-exported (`X as X`): one adapter to import.
from anycast_ctl.agent.exabgp_events import (
    Ack as Ack,
    Event as Event,
    PeerState as PeerState,
    Shutdown as Shutdown,
    Unknown as Unknown,
    parse_line as parse_line,
)
from anycast_ctl.config.node import Bgp, Neighbor, NodeConfig, Vip

DIALECTS = ("4.2", "5.0")

# RFC 8326. Rendered as numbers: the name would be read by ExaBGP as its `shutdown` command.
GRACEFUL_SHUTDOWN = "65535:0"
_WELL_KNOWN_COMMUNITIES = {
    "graceful-shutdown": GRACEFUL_SHUTDOWN,
    "blackhole": "65535:666",  # RFC 7999
    "no-export": "65535:65281",  # RFC 1997
    "no-advertise": "65535:65282",
    "no-export-subconfed": "65535:65283",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Everything we render is drawn from this alphabet; anything else is a bug or an attack.
_LINE_ALPHABET = re.compile(r"^[a-z0-9 .:/\[\]x-]+$")


class UndeclaredPrefix(ValueError):
    """The agent was asked to speak about a prefix that its node config does not declare."""


def _require_clean(text: str) -> str:
    if _CONTROL.search(text):
        raise ValueError(f"refusing control characters in an ExaBGP line: {text!r}")
    return text


def _require_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown ExaBGP dialect {dialect!r} (known: {', '.join(DIALECTS)})")


def _finish(line: str) -> str:
    _require_clean(line)
    if not _LINE_ALPHABET.match(line):
        raise ValueError(f"refusing unexpected characters in an ExaBGP line: {line!r}")
    return line


# ---------------------------------------------------------------- attribute rendering
def _ip_version(address: str) -> int:
    return ipaddress.ip_interface(address).version


def carriers(vip: Vip, bgp: Bgp) -> list[Neighbor]:
    """The neighbors whose session carries this VIP's address family.

    A session carries the family of its own addresses. It also carries the other family when
    the VIP names an explicit next hop, because `next-hop self` can only give an address of
    the session's own family.
    """
    version = _ip_version(vip.address)
    if vip.next_hop != "self":
        return list(bgp.neighbors)
    return [n for n in bgp.neighbors if _ip_version(n.address) == version]


def _community(value: str) -> str:
    value = _WELL_KNOWN_COMMUNITIES.get(value, value)
    high, _, low = value.partition(":")
    if not (high.isdigit() and low.isdigit() and int(high) <= 0xFFFF and int(low) <= 0xFFFF):
        raise ValueError(f"not a community: {value!r}")
    return f"{int(high)}:{int(low)}"


def _large_community(value: str) -> str:
    parts = value.split(":")
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= 0xFFFFFFFF for p in parts):
        raise ValueError(f"not a large community: {value!r}")
    return ":".join(str(int(p)) for p in parts)


_EXT_SUBTYPE = {"target": 0x02, "origin": 0x03}


def _extended_community(value: str) -> str:
    """'target:65000:100' -> '0x0002fde800000064' (RFC 4360 two-octet-AS, IPv4 or RFC 5668 AS4)."""
    kind, _, rest = value.partition(":")
    admin, _, assigned = rest.rpartition(":")
    if kind not in _EXT_SUBTYPE or not assigned.isdigit():
        raise ValueError(f"not an extended community: {value!r}")
    subtype, local = _EXT_SUBTYPE[kind], int(assigned)
    if "." in admin:
        try:
            global_admin = int(ipaddress.IPv4Address(admin))
        except ValueError:
            raise ValueError(
                f"not an extended community (bad IPv4 administrator): {value!r}"
            ) from None
        type_, global_bytes, local_bytes = 0x01, 4, 2
    elif admin.isdigit() and int(admin) <= 0xFFFF:
        global_admin, type_, global_bytes, local_bytes = int(admin), 0x00, 2, 4
    elif admin.isdigit() and int(admin) <= 0xFFFFFFFF:
        global_admin, type_, global_bytes, local_bytes = int(admin), 0x02, 4, 2
    else:
        raise ValueError(f"not an extended community (bad administrator): {value!r}")
    if local >= 1 << (8 * local_bytes):
        raise ValueError(f"extended community {value!r}: local value must fit {local_bytes} bytes")
    raw = (
        bytes([type_, subtype])
        + global_admin.to_bytes(global_bytes, "big")
        + local.to_bytes(local_bytes, "big")
    )
    return "0x" + raw.hex()


def _as_path(vip: Vip, bgp: Bgp) -> list[int] | None:
    """The explicit AS path for `as_path_prepend`, or None to let ExaBGP add the default."""
    if vip.as_path_prepend == 0:
        return None
    peers = carriers(vip, bgp)
    external = {n.peer_as != bgp.local_as for n in peers}
    if len(external) > 1:
        raise ValueError(
            f"VIP {vip.address}: as_path_prepend needs all its neighbors to be eBGP or all iBGP "
            "(one line goes to every neighbor, and the two need different AS paths)"
        )
    copies = vip.as_path_prepend + (1 if external == {True} else 0)
    return [bgp.local_as] * copies


def _bracket(items: list[str]) -> str:
    return "[ " + " ".join(items) + " ]"


def _route_target(vip: Vip) -> str:
    net = ipaddress.ip_network(vip.address, strict=True)
    if net.prefixlen != net.max_prefixlen:
        raise ValueError(f"VIP {vip.address} is not a host route")
    return str(net)


def _path_information(vip: Vip) -> list[str]:
    return ["path-information", str(vip.path_id)] if vip.path_id is not None else []


def _attribute_words(vip: Vip, bgp: Bgp, graceful_shutdown: bool) -> list[str]:
    """Everything after the prefix in `announce route PREFIX ...`, in ExaBGP's word order."""
    next_hop = "self" if vip.next_hop == "self" else str(ipaddress.ip_address(vip.next_hop))
    words = ["next-hop", next_hop]
    if vip.med is not None:
        words += ["med", str(int(vip.med))]
    if vip.local_preference is not None:
        # Sent to iBGP neighbors only: ExaBGP (rightly) drops LOCAL_PREF towards eBGP peers.
        words += ["local-preference", str(int(vip.local_preference))]
    as_path = _as_path(vip, bgp)
    if as_path is not None:
        words += ["as-path", _bracket([str(asn) for asn in as_path])]
    communities = [_community(c) for c in vip.communities]
    if graceful_shutdown:
        communities.append(GRACEFUL_SHUTDOWN)
    communities = list(dict.fromkeys(communities))
    if communities:
        words += ["community", _bracket(communities)]
    if vip.large_communities:
        words += ["large-community", _bracket([_large_community(c) for c in vip.large_communities])]
    if vip.extended_communities:
        words += [
            "extended-community",
            _bracket([_extended_community(c) for c in vip.extended_communities]),
        ]
    return words + _path_information(vip)


def announce_line(vip: Vip, bgp: Bgp, dialect: str, *, graceful_shutdown: bool = False) -> str:
    """The ExaBGP command that announces `vip` to every neighbor carrying its family."""
    _require_dialect(dialect)
    words = [
        "announce",
        "route",
        _route_target(vip),
        *_attribute_words(vip, bgp, graceful_shutdown),
    ]
    return _finish(" ".join(words))


def withdraw_line(vip: Vip, bgp: Bgp, dialect: str) -> str:
    """The ExaBGP command that withdraws `vip`; the NLRI (prefix and path-id) is what matches."""
    _require_dialect(dialect)
    return _finish(" ".join(["withdraw", "route", _route_target(vip), *_path_information(vip)]))


# At most this many prefixes in one `... attributes ... nlri` line. ExaBGP 5.0 spends about
# 0.5-1.3 ms a prefix on a line (a deepcopy of the route per prefix; 2-core VM at load 8-10),
# whatever the line's length, and answers a line only when it is through: short lines keep
# every answer within the hang watch's limit (exabgp_watch.py) and let the UPDATEs of the
# first lines leave while ExaBGP still reads the next ones. 49: ExaBGP's reactor loop runs
# 50 steps, one a prefix and one to finish the line and answer it, so such a line is answered
# every loop, and the answer brings the next line (speaker.WINDOW_PREFIXES), which keeps
# ExaBGP from idling in its 10 ms poll between loops.
NLRI_PER_LINE = 49


def prefixes_in(line: str) -> int:
    """How many prefixes a command carries: the words after `nlri`, else 1 (`announce route`,
    `withdraw route`, a probe). The hang watch allows a big command more time."""
    words = line.split()
    if "nlri" in words:
        return max(1, len(words) - words.index("nlri") - 1)
    return 1


@dataclass(frozen=True)
class _Parts:
    """The pieces of a VIP's lines, rendered once: its lines differ only in how they join."""

    version: int
    target: str  # "192.0.2.10/32"
    words: tuple[str, ...]  # the attributes, as in `announce route TARGET WORDS`
    graceful_words: tuple[str, ...]  # the same with GRACEFUL_SHUTDOWN
    path_information: tuple[str, ...]
    batchable: bool


def _parts(vip: Vip, bgp: Bgp, dialect: str) -> _Parts:
    return _Parts(
        version=_ip_version(vip.address),
        target=_route_target(vip),
        words=tuple(_attribute_words(vip, bgp, False)),
        graceful_words=tuple(_attribute_words(vip, bgp, True)),
        path_information=tuple(_path_information(vip)),
        # 4.2's `attributes ... nlri` parser sets path-information on a template NLRI it
        # never copies to the prefixes it lists: a VIP with a path-id would lose it (5.0
        # copies it).
        batchable=vip.path_id is None or dialect != "4.2",
    )


def _batched(verb: str, groups: dict[tuple[int, tuple[str, ...]], list[str]]) -> list[str]:
    lines = []
    for (_, words), targets in groups.items():
        for start in range(0, len(targets), NLRI_PER_LINE):
            chunk = targets[start : start + NLRI_PER_LINE]
            if len(chunk) == 1:  # one prefix: the plain form, as 4.2 and 5.0 both document
                head = [verb, "route", chunk[0], *words]
            else:
                head = [verb, "attributes", *words, "nlri", *chunk]
            lines.append(_finish(" ".join(head)))
    return lines


def _announce_parts(parts: list[_Parts], graceful_shutdown: bool) -> list[str]:
    groups: dict[tuple[int, tuple[str, ...]], list[str]] = {}
    single: list[str] = []
    for part in parts:
        words = part.graceful_words if graceful_shutdown else part.words
        if part.batchable:
            groups.setdefault((part.version, words), []).append(part.target)
        else:
            single.append(_finish(" ".join(["announce", "route", part.target, *words])))
    return _batched("announce", groups) + single


def _withdraw_parts(parts: list[_Parts]) -> list[str]:
    groups: dict[tuple[int, tuple[str, ...]], list[str]] = {}
    single: list[str] = []
    for part in parts:
        if part.batchable:
            groups.setdefault((part.version, part.path_information), []).append(part.target)
        else:
            single.append(
                _finish(" ".join(["withdraw", "route", part.target, *part.path_information]))
            )
    return _batched("withdraw", groups) + single


def announce_lines(
    vips: list[Vip], bgp: Bgp, dialect: str, *, graceful_shutdown: bool = False
) -> list[str]:
    """As few commands as announce `vips`: one `announce attributes ... nlri P1 P2 ...` per
    family and set of identical attributes (ExaBGP takes one family per line), in first-seen
    order; a VIP alone in its group gets the plain `announce route` line."""
    _require_dialect(dialect)
    return _announce_parts([_parts(vip, bgp, dialect) for vip in vips], graceful_shutdown)


def withdraw_lines(vips: list[Vip], bgp: Bgp, dialect: str) -> list[str]:
    """As few commands as withdraw `vips`: only the NLRI matters, so one line per family and
    path-id (`withdraw attributes [path-information N] nlri P1 P2 ...`)."""
    _require_dialect(dialect)
    return _withdraw_parts([_parts(vip, bgp, dialect) for vip in vips])


class RouteWriter:
    """Renders lines for the VIPs a node config declares, and for nothing else."""

    def __init__(self, config: NodeConfig) -> None:
        self._config = config
        self._vips = {vip.address: vip for vip in config.vips}
        for vip in config.vips:  # fail at start, not at the first state change
            if not carriers(vip, config.bgp):
                raise ValueError(
                    f"VIP {vip.address}: no neighbor of its address family to announce it to"
                )
            announce_line(vip, config.bgp, config.exabgp.dialect, graceful_shutdown=True)
        # Rendered once: a state change of a thousand VIPs only joins their pieces.
        _require_dialect(config.exabgp.dialect)
        self._parts = {
            vip.address: _parts(vip, config.bgp, config.exabgp.dialect) for vip in config.vips
        }

    @property
    def prefixes(self) -> list[str]:
        return list(self._vips)

    def _vip(self, prefix: str) -> Vip:
        if prefix in self._vips:  # already the normalized form
            return self._vips[prefix]
        _require_clean(prefix)
        try:
            key = str(ipaddress.ip_network(prefix, strict=True))
        except ValueError:
            raise UndeclaredPrefix(
                f"{prefix!r} is not a declared VIP of node {self._config.node}"
            ) from None
        if key not in self._vips:
            raise UndeclaredPrefix(f"{key} is not a declared VIP of node {self._config.node}")
        return self._vips[key]

    def announce(self, prefix: str, *, graceful_shutdown: bool = False) -> str:
        vip = self._vip(prefix)
        return announce_line(
            vip, self._config.bgp, self._config.exabgp.dialect, graceful_shutdown=graceful_shutdown
        )

    def withdraw(self, prefix: str) -> str:
        return withdraw_line(self._vip(prefix), self._config.bgp, self._config.exabgp.dialect)

    def announce_many(self, prefixes: list[str], *, graceful_shutdown: bool = False) -> list[str]:
        parts = [self._parts[self._vip(p).address] for p in prefixes]
        return _announce_parts(parts, graceful_shutdown)

    def announce_each(self, announces: list[tuple[str, bool]]) -> list[str]:
        """(prefix, with GRACEFUL_SHUTDOWN) pairs -> the batched lines, plain ones first."""
        plain = [prefix for prefix, graceful in announces if not graceful]
        graceful = [prefix for prefix, graceful in announces if graceful]
        return self.announce_many(plain) + self.announce_many(graceful, graceful_shutdown=True)

    def withdraw_many(self, prefixes: list[str]) -> list[str]:
        return _withdraw_parts([self._parts[self._vip(p).address] for p in prefixes])
