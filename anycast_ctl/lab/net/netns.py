"""The one place the lab talks netlink (pyroute2): namespaces, veths, addresses, routes, sysctls,
route dumps, and the raw route-notification sockets the FIB watcher reads.

Every namespace is named `<tag>-<node>` and recorded in the lab's state before it is created.
Functions take namespace *names*; each opens a short-lived netlink socket inside that namespace
(pyroute2 forks a helper to create it) and never creates a namespace by accident (flags=0).
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.process import ChildProcess

from anycast_ctl.errors import UserError
from anycast_ctl.lab import state
from anycast_ctl.lab.errors import LabError

IFA_F_NODAD = 0x02  # lab addresses are unique by construction; skip IPv6 DAD's ~1 s delay
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")  # IFNAMSIZ is 16 including the NUL
_SYSCTL_RE = re.compile(r"^net\.[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Namespace:
    tag: str
    node: str
    name: str


@dataclass(frozen=True)
class VethPair:
    ns_a: str
    if_a: str
    ns_b: str
    if_b: str


class NextHop(TypedDict):
    gateway: str | None
    ifname: str | None
    weight: int  # rtnh_hops + 1, as `ip route` shows it


class NamespaceExistsError(UserError):
    """`up` must not clobber a running lab."""


def check_ifname(ifname: str) -> str:
    if not _IFNAME_RE.match(ifname):
        raise UserError.single("<lab>", "ifname", f"{ifname!r}: 1-15 of A-Z a-z 0-9 _ . : -")
    return ifname


def list_namespaces() -> list[str]:
    return sorted(netns.listnetns())


def namespace_exists(name: str) -> bool:
    return name in netns.listnetns()


def create_namespace(tag: str, node: str) -> Namespace:
    """Create `<tag>-<node>` with its loopback up; refuse if it already exists."""
    name = state.namespace_name(tag, node)
    if namespace_exists(name):
        raise NamespaceExistsError.single(
            "<lab>",
            name,
            f"network namespace already exists: lab {tag!r} is running? "
            f"take it down first (anycast-ctl lab down {tag})",
        )
    state.record_namespace(tag, name)  # before creating: a crash must not orphan it
    try:
        netns.create(name)
    except FileExistsError:
        raise NamespaceExistsError.single(
            "<lab>", name, "network namespace already exists"
        ) from None
    set_link_up(name, "lo")
    return Namespace(tag=tag, node=node, name=name)


def delete_namespace(name: str) -> bool:
    """Unmount and remove a namespace; False when it did not exist."""
    if not namespace_exists(name):
        return False
    netns.remove(name)
    return True


@contextmanager
def _ipr(ns: str, what: str) -> Iterator[IPRoute]:
    try:
        ipr = IPRoute(netns=ns, flags=0)
    except FileNotFoundError:
        raise LabError(f"{what}: no network namespace {ns!r}") from None
    try:
        yield ipr
    except NetlinkError as exc:
        raise LabError(f"{what} in {ns}: {exc}") from exc
    finally:
        ipr.close()


def _index(ipr: IPRoute, ns: str, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LabError(f"no interface {ifname!r} in namespace {ns}")
    return found[0]


def add_veth(ns_a: str, if_a: str, ns_b: str, if_b: str, mtu: int | None = None) -> VethPair:
    """A veth pair created directly inside ns_a with its peer inside ns_b: both ends get their
    final names in their own namespaces, so nothing ever appears (or collides) in the root ns."""
    check_ifname(if_a), check_ifname(if_b)
    extra = {"mtu": mtu} if mtu else {}
    peer = {"ifname": if_b, "net_ns_fd": ns_b, **extra}
    with _ipr(ns_a, f"veth {if_a}<->{ns_b}:{if_b}") as ipr:
        ipr.link("add", ifname=if_a, kind="veth", peer=peer, **extra)
    return VethPair(ns_a, if_a, ns_b, if_b)


def set_link_up(ns: str, ifname: str) -> None:
    with _ipr(ns, f"link {ifname} up") as ipr:
        ipr.link("set", index=_index(ipr, ns, ifname), state="up")


def set_link_down(ns: str, ifname: str) -> None:
    with _ipr(ns, f"link {ifname} down") as ipr:
        ipr.link("set", index=_index(ipr, ns, ifname), state="down")


def set_links_down(ns: str, ifnames: list[str]) -> None:
    """Several links down in one netlink session, one right after the other (a node that
    dies loses them all at once; a session per link would spread them over tens of ms)."""
    with _ipr(ns, f"links {','.join(ifnames)} down") as ipr:
        indices = [_index(ipr, ns, ifname) for ifname in ifnames]
        for index in indices:
            ipr.link("set", index=index, state="down")


def link_names(ns: str) -> list[str]:
    with _ipr(ns, "list links") as ipr:
        return sorted(link.get("ifname") for link in ipr.get_links())


def add_address(ns: str, ifname: str, cidr: str) -> None:
    """'10.0.0.1/30' or '2001:db8::1/64' on ifname (IPv6 without DAD, usable at once)."""
    iface = ipaddress.ip_interface(cidr)
    flags = IFA_F_NODAD if iface.version == 6 else 0
    with _ipr(ns, f"address {cidr} on {ifname}") as ipr:
        ipr.addr(
            "add",
            index=_index(ipr, ns, ifname),
            address=str(iface.ip),
            prefixlen=iface.network.prefixlen,
            flags=flags,
        )


def add_route(
    ns: str,
    dst: str,
    gateway: str | None = None,
    ifname: str | None = None,
    metric: int | None = None,
) -> None:
    """A static route; dst 'default' means 0.0.0.0/0 or ::/0 by the gateway's family."""
    if dst == "default":
        if gateway is None:
            raise LabError("a default route needs a gateway")
        dst = "0.0.0.0/0" if ipaddress.ip_address(gateway).version == 4 else "::/0"
    net = ipaddress.ip_network(dst)
    spec: dict = {
        "dst": str(net),
        "family": socket.AF_INET if net.version == 4 else socket.AF_INET6,
    }
    if gateway:
        spec["gateway"] = gateway
    if metric is not None:
        spec["priority"] = metric
    with _ipr(ns, f"route {dst}") as ipr:
        if ifname:
            spec["oif"] = _index(ipr, ns, ifname)
        ipr.route("add", **spec)


def add_default_route(ns: str, gateway: str, ifname: str | None = None) -> None:
    add_route(ns, "default", gateway=gateway, ifname=ifname)


def add_multipath_route(
    ns: str,
    dst: str,
    nexthops: list[tuple[str, str]],
    source: str | None = None,
    *,
    replace: bool = False,
) -> None:
    """A static route over one or more (gateway, ifname) next hops (ECMP when several), with an
    optional preferred source address (`ip route add DST src SRC nexthop via GW dev IF ...`;
    `replace`: `ip route replace`, for a route something else may have put back meanwhile)."""
    net = ipaddress.ip_network(dst)  # "0.0.0.0/0" / "::/0" for a default route
    spec: dict = {
        "dst": str(net),
        "family": socket.AF_INET if net.version == 4 else socket.AF_INET6,
    }
    if source:
        spec["prefsrc"] = source
    with _ipr(ns, f"route {dst}") as ipr:
        hops = [{"gateway": gw, "oif": _index(ipr, ns, ifname)} for gw, ifname in nexthops]
        if len(hops) == 1:
            spec.update(hops[0])
        else:
            spec["multipath"] = hops
        ipr.route("replace" if replace else "add", **spec)


def add_local_route(ns: str, prefix: str, ifname: str = "lo") -> None:
    """Make a whole prefix local (`ip route add local PREFIX dev lo`, "AnyIP"): a lab client can
    then bind any address of its prefix as a source."""
    net = ipaddress.ip_network(prefix)
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    with _ipr(ns, f"local route {prefix}") as ipr:
        ipr.route(
            "add",
            dst=str(net),
            family=family,
            type="local",
            table=255,
            scope=254,
            oif=_index(ipr, ns, ifname),
        )


def fib_routes(ns: str, prefix: str) -> list[NextHop]:
    """The kernel's next hops for exactly `prefix` in the main table; [] when absent."""
    net = ipaddress.ip_network(prefix)
    return fib_table(ns, [str(net)]).get(str(net), [])


def fib_table(ns: str, prefixes: Iterable[str]) -> dict[str, list[NextHop]]:
    """The kernel's next hops for each of `prefixes` (normalized, e.g. "192.0.2.10/32") in
    the main table, from one route dump per address family: a lab of 1,000 VIPs asks for all
    of them at once, and a dump per prefix would decode 1,000 routes 1,000 times. A prefix
    without a route is absent from the result."""
    wanted = {str(ipaddress.ip_network(p)) for p in prefixes}
    versions = {ipaddress.ip_network(p).version for p in wanted}
    out: dict[str, list[NextHop]] = {}
    with _ipr(ns, f"route dump of {len(wanted)} prefixes") as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.get_links()}
        for version in sorted(versions):
            family = socket.AF_INET if version == 4 else socket.AF_INET6
            for route in ipr.get_routes(family=family, table=254):
                dst = route.get("dst") or ("0.0.0.0" if version == 4 else "::")
                key = f"{dst}/{route['dst_len']}"
                if key in wanted:
                    out.setdefault(key, []).extend(_decode_nexthops(route, names))
    return out


def _decode_nexthops(route, names: dict[int, str]) -> list[NextHop]:
    multipath = route.get("multipath")
    if multipath:
        return [
            NextHop(
                gateway=_gateway(nh),
                ifname=names.get(nh["oif"]),
                weight=nh.get("hops", 0) + 1,
            )
            for nh in multipath
        ]
    return [NextHop(gateway=_gateway(route), ifname=names.get(route.get("oif")), weight=1)]


def _gateway(msg) -> str | None:
    via = msg.get("via")  # an IPv4 route through an IPv6 next hop (RFC 5549)
    if via:
        return via.get("addr") if isinstance(via, dict) else str(via)
    return msg.get("gateway")


# ---------------------------------------------------------------- route notifications
CLONE_NEWNET = 0x40000000
_RCVBUF = 4 << 20  # a burst of FRR updates must not overflow the socket (ENOBUFS)


def route_sockets(netns: str, groups: int) -> tuple[socket.socket, socket.socket]:
    """(event socket bound to the rtnetlink `groups`, plain socket for dumps), both created inside
    namespace `netns`, for a reader that stays in the root namespace (lab/observe/fibwatch.py)."""
    result: dict[str, Any] = {}

    def create() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        except FileNotFoundError:
            result["error"] = LabError(f"route sockets: no network namespace {netns!r}")
            return
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                result["error"] = LabError(
                    f"route sockets: setns {netns}: {os.strerror(ctypes.get_errno())}"
                )
                return
        finally:
            os.close(fd)
        events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        events.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        events.bind((0, groups))
        dumps = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        dumps.bind((0, 0))
        result["sockets"] = (events, dumps)

    # This thread ends inside the namespace; nothing else ever runs on it.
    thread = threading.Thread(target=create, name=f"route-sockets-{netns}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    sockets: tuple[socket.socket, socket.socket] = result["sockets"]
    return sockets


# ---------------------------------------------------------------- sysctls
def _sysctl_path(key: str) -> str:
    if not _SYSCTL_RE.match(key) or ".." in key:
        raise UserError.single("<lab>", "sysctl", f"{key!r}: only net.* keys are per-namespace")
    return "/proc/sys/" + key.replace(".", "/")


def _sysctl_in_ns(name: str, path: str, value: str | None) -> bytes:
    # Runs in a forked child: /proc/sys/net shows the namespace of the process that opens it.
    netns.setns(name, flags=0, fork=False)
    if value is None:
        with open(path) as f:
            return f.read().strip().encode()
    with open(path, "w") as f:
        f.write(value)
    return b""


def _sysctl(ns: str, key: str, value: str | None) -> str:
    if not namespace_exists(ns):
        raise LabError(f"sysctl {key}: no network namespace {ns!r}")
    with ChildProcess(target=_sysctl_in_ns, args=[ns, _sysctl_path(key), value]) as child:
        try:
            return child.get_data(timeout=5).decode()
        except OSError as exc:
            raise LabError(f"sysctl {key} in {ns}: {exc}") from exc


def set_sysctl(ns: str, key: str, value: int | str) -> None:
    _sysctl(ns, key, str(value))


def get_sysctl(ns: str, key: str) -> str:
    return _sysctl(ns, key, None)


def enable_forwarding(ns: str) -> None:
    set_sysctl(ns, "net.ipv4.ip_forward", 1)
    set_sysctl(ns, "net.ipv6.conf.all.forwarding", 1)


def set_multipath_hash(
    ns: str, policy: int = 3, fields: int = 0x37, seed: int | None = None
) -> None:
    """ECMP hashing as the simulator models it: policy 3 with 5-tuple fields and a fixed seed
    makes the next hop a deterministic function of the flow (DESIGN.md, kernel facts)."""
    for fam in ("ipv4", "ipv6"):
        set_sysctl(ns, f"net.{fam}.fib_multipath_hash_policy", policy)
        if policy == 3:
            set_sysctl(ns, f"net.{fam}.fib_multipath_hash_fields", hex(fields))
    if seed is not None:
        set_sysctl(ns, "net.ipv4.fib_multipath_hash_seed", seed)  # one seed serves both families
