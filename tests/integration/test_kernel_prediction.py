"""The kernel-exact model against the running kernel (root only).

A namespace ``acx-kp<pid>-*`` gets a default route over four weighted next hops, each a veth
whose peer end stays in the namespace (no ``dummy`` module here). The kernel's choices are
read three ways and each must match the model flow for flow:

* ``ip route get ... iif cin`` (forwarded path; IPv6: the fl6 path, see below);
* frames injected on ``cpeer`` so that the kernel really forwards them, caught on the
  next hops' peer ends with packet sockets (forwarded path, IPv4 and IPv6);
* UDP datagrams sent from sockets in the namespace, caught the same way (locally
  generated path, no skb at route lookup).

Facts these tests pin down (kernel 6.18): ``ip route get`` without ``iif`` hands the
kernel a synthetic skb, so it hashes like a forwarded packet (policy 3 includes the
jhash step) -- not like a socket; ``ip -6 route get`` never passes an skb, so it hashes
like a locally generated packet even with ``iif``.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import select
import socket
import struct
import subprocess
import threading
import time
import uuid

import numpy as np
import pytest

from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.linux import LinuxHashSettings, select_nexthops

pytestmark = pytest.mark.root

WEIGHTS = [1, 3, 2, 5]
SEED = 0x5EED1234
MAGIC = b"ACXH1"
N_FLOWS = 1000
# (policy, fields) pairs: the product's setting first, then masks that exercise ordering.
SETTINGS = [(0, 0x37), (1, 0x37), (3, 0x37), (3, 0x03), (3, 0x26), (3, 0x13)]


def sh(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(args, input=stdin, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def lab():
    """The router namespace; removed even when a test fails."""
    ns = f"acx-kp{os.getpid()}-{uuid.uuid4().hex[:8]}"
    sh("ip", "netns", "add", ns)
    try:
        ip = ("ip", "-n", ns)
        sysctl = ("ip", "netns", "exec", ns, "sysctl", "-q", "-w")
        sh(
            *sysctl,
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.conf.default.accept_dad=0",
        )
        sh(*sysctl, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        sh(*sysctl, f"net.ipv4.fib_multipath_hash_seed={SEED}", "net.ipv6.ip_nonlocal_bind=1")
        sh(*ip, "link", "set", "lo", "up")
        for i in range(len(WEIGHTS)):
            sh(*ip, "link", "add", f"r{i}", "type", "veth", "peer", "name", f"p{i}")
            sh(*ip, "addr", "add", f"10.1.{i}.1/24", "dev", f"r{i}")
            sh(*ip, "addr", "add", f"2001:db8:1:{i}::1/64", "dev", f"r{i}", "nodad")
            for dev in (f"r{i}", f"p{i}"):
                sh(*ip, "link", "set", dev, "up")
            # A gateway MAC that is not p{i}'s: the peer end sees the frame (packet
            # sockets) but its IP stack ignores it, so nothing is forwarded twice.
            gw_mac = f"02:00:00:00:01:{i:02x}"
            sh(
                *ip,
                "neigh",
                "replace",
                f"10.1.{i}.2",
                "lladdr",
                gw_mac,
                "dev",
                f"r{i}",
                "nud",
                "permanent",
            )
            sh(
                *ip,
                "neigh",
                "replace",
                f"2001:db8:1:{i}::2",
                "lladdr",
                gw_mac,
                "dev",
                f"r{i}",
                "nud",
                "permanent",
            )
        sh(*ip, "link", "add", "cin", "type", "veth", "peer", "name", "cpeer")
        sh(*ip, "addr", "add", "10.9.0.1/24", "dev", "cin")
        sh(*ip, "addr", "add", "2001:db8:9::1/64", "dev", "cin", "nodad")
        for dev in ("cin", "cpeer"):
            sh(*ip, "link", "set", dev, "up")
        hops4 = [f"nexthop via 10.1.{i}.2 dev r{i} weight {w}" for i, w in enumerate(WEIGHTS)]
        hops6 = [
            f"nexthop via 2001:db8:1:{i}::2 dev r{i} weight {w}" for i, w in enumerate(WEIGHTS)
        ]
        sh(*ip, "route", "add", "default", *" ".join(hops4).split())
        sh(*ip, "-6", "route", "add", "default", *" ".join(hops6).split())
        # Any address in these ranges is local, so sockets may send from it.
        sh(*ip, "route", "add", "local", "100.64.0.0/16", "dev", "lo", "table", "local")
        cin_mac = json.loads(sh(*ip, "-j", "link", "show", "cin"))[0]["address"]
        yield {"ns": ns, "cin_mac": cin_mac}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def configure(lab, family: int, policy: int, fields: int) -> None:
    v = "ipv4" if family == 4 else "ipv6"
    sh(
        "ip",
        "netns",
        "exec",
        lab["ns"],
        "sysctl",
        "-q",
        "-w",
        f"net.{v}.fib_multipath_hash_policy={policy}",
        f"net.{v}.fib_multipath_hash_fields={fields}",
    )


# ---------------------------------------------------------------- flows


def random_flows(rng, family: int, n: int, local: bool = False, icmp: bool = True) -> FlowArrays:
    protos = [6, 17, 1 if family == 4 else 58] if icmp else [6, 17]
    rows = []
    for i in range(n):
        src, dst = _addr(rng, family, local), _addr(rng, family, False)
        if i % 97 == 0:  # equal ports and near-equal addresses hit consistentify's edges
            sport = dport = int(rng.integers(1, 65536))
        else:
            sport, dport = (int(x) for x in rng.integers(1, 65536, 2))
        rows.append((src, dst, int(rng.choice(protos)), sport, dport))
    return FlowArrays.from_tuples(rows)


def _addr(rng, family: int, local: bool) -> str:
    if family == 4:
        if local:
            return str(
                ipaddress.IPv4Address((100 << 24) | (64 << 16) | int(rng.integers(1, 65535)))
            )
        while True:  # any unicast address outside the lab's own subnets and martians
            a = ipaddress.IPv4Address(int(rng.integers(1 << 24, 224 << 24)))
            if not (
                a.is_loopback or a.is_private or a.is_link_local or a.is_reserved or a in _LAB4
            ):
                return str(a)
    if local:
        return str(ipaddress.IPv6Address((0x2001_0DB8_0064 << 80) | int(rng.integers(1, 1 << 62))))
    return str(
        ipaddress.IPv6Address(
            (0x2 << 124) | (int(rng.integers(0, 1 << 60)) << 64) | int(rng.integers(1, 1 << 63))
        )
    )


_LAB4 = ipaddress.ip_network("100.64.0.0/16")


def predict(flows: FlowArrays, policy: int, fields: int, forwarded: bool) -> np.ndarray:
    return select_nexthops(flows, WEIGHTS, LinuxHashSettings(policy, fields, SEED, forwarded))


def mismatches(expected: np.ndarray, got: list[int], flows: FlowArrays) -> list[str]:
    src, dst = flows.address_strings("src"), flows.address_strings("dst")
    return [
        f"{src[i]} > {dst[i]} proto {flows.proto[i]} {flows.sport[i]}>{flows.dport[i]}: "
        f"model r{expected[i]}, kernel r{got[i]}"
        for i in range(len(got))
        if expected[i] != got[i]
    ]


# ---------------------------------------------------------------- ip route get


def route_get(lab, flows: FlowArrays, iif: str | None) -> list[int]:
    names = {4: "icmp", 6: "ipv6-icmp"}
    lines = []
    for s, d, p, sp, dp in zip(
        flows.address_strings("src"),
        flows.address_strings("dst"),
        flows.proto,
        flows.sport,
        flows.dport,
        strict=True,
    ):
        proto = names.get(flows.family) if p in (1, 58) else int(p)
        via = f" iif {iif}" if iif else ""
        lines.append(f"route get {d} from {s}{via} ipproto {proto} sport {sp} dport {dp}")
    family = "-4" if flows.family == 4 else "-6"
    out = sh("ip", "-n", lab["ns"], family, "-j", "-batch", "-", stdin="\n".join(lines) + "\n")
    decoder, pos, devs = json.JSONDecoder(), 0, []
    while pos < len(out):
        if out[pos].isspace():
            pos += 1
            continue
        obj, pos = decoder.raw_decode(out, pos)
        devs.append(int(obj[0]["dev"][1:]))
    assert len(devs) == len(flows)
    return devs


@pytest.mark.parametrize("policy,fields", SETTINGS)
def test_route_get_forwarded_ipv4_matches_model(lab, policy, fields):
    configure(lab, 4, policy, fields)
    flows = random_flows(np.random.default_rng(policy * 100 + fields), 4, N_FLOWS)
    got = route_get(lab, flows, iif="cin")
    assert mismatches(predict(flows, policy, fields, forwarded=True), got, flows) == []


@pytest.mark.parametrize("policy,fields", [(1, 0x37), (3, 0x37), (3, 0x13)])
def test_route_get_without_iif_hashes_like_a_forwarded_packet(lab, policy, fields):
    configure(lab, 4, policy, fields)
    flows = random_flows(np.random.default_rng(7 + fields), 4, N_FLOWS, local=True, icmp=False)
    got = route_get(lab, flows, iif=None)
    assert mismatches(predict(flows, policy, fields, forwarded=True), got, flows) == []
    if policy == 3:  # the socket path differs (no jhash step): the distinction is real
        assert (predict(flows, policy, fields, forwarded=False) != np.array(got)).any()


@pytest.mark.parametrize("policy,fields", SETTINGS)
def test_route_get_ipv6_matches_model_of_the_fl6_path(lab, policy, fields):
    configure(lab, 6, policy, fields)
    flows = random_flows(np.random.default_rng(policy * 10 + fields), 6, N_FLOWS, icmp=False)
    got = route_get(lab, flows, iif="cin")
    assert mismatches(predict(flows, policy, fields, forwarded=False), got, flows) == []


# ---------------------------------------------------------------- real packets

_CLONE_NEWNET = 0x40000000
_ETH_P_ALL = 0x0003


def in_netns(ns: str, fn):
    """Run ``fn`` on a thread that has entered ``ns``; sockets it opens stay there."""
    box: dict = {}

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{ns}") as handle:
            if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
                box["error"] = OSError(ctypes.get_errno(), "setns")
                return
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _l4(proto: int, sport: int, dport: int, payload: bytes) -> bytes:
    if proto == 6:  # a bare SYN; nobody checks the checksum of a forwarded segment
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + payload
    if proto == 17:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return struct.pack("!BBHHH", 8 if proto == 1 else 128, 0, 0, 1, 1) + payload  # echo request


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    return ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF


def frame(flows: FlowArrays, i: int, dst_mac: str, src: str, dst: str) -> bytes:
    l4 = _l4(
        int(flows.proto[i]), int(flows.sport[i]), int(flows.dport[i]), MAGIC + struct.pack("!I", i)
    )
    if flows.family == 4:
        head = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(l4),
            i & 0xFFFF,
            0,
            64,
            int(flows.proto[i]),
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
        ip = head[:10] + struct.pack("!H", _ipv4_checksum(head)) + head[12:] + l4
        ethertype = 0x0800
    else:
        ip = (
            struct.pack(
                "!IHBB16s16s",
                6 << 28,
                len(l4),
                int(flows.proto[i]),
                64,
                ipaddress.IPv6Address(src).packed,
                ipaddress.IPv6Address(dst).packed,
            )
            + l4
        )
        ethertype = 0x86DD
    return (
        bytes.fromhex(dst_mac.replace(":", ""))
        + bytes.fromhex("020000000001")
        + struct.pack("!H", ethertype)
        + ip
    )


def _flow_id(data: bytes, flows: FlowArrays, wire: list[tuple[bytes, bytes]]) -> int | None:
    """The flow a captured frame belongs to, if it is that flow's own packet.

    Checking the addresses keeps out anything else carrying the marker, such as an ICMP
    error quoting the packet.
    """
    at = data.find(MAGIC)
    if at < 0 or len(data) < at + len(MAGIC) + 4:
        return None
    flow = struct.unpack("!I", data[at + len(MAGIC) : at + len(MAGIC) + 4])[0]
    if flow >= len(flows):
        return None
    addrs = data[26:34] if flows.family == 4 else data[22:54]
    return flow if addrs == wire[flow][0] + wire[flow][1] else None


def observe(lab, flows: FlowArrays, send) -> list[int]:
    """Which next hop's wire each flow's packet appears on; ``send(i)`` emits flow i."""
    sniffers = []
    for i in range(len(WEIGHTS)):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        s.bind((f"p{i}", 0))
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
        s.setblocking(False)
        sniffers.append(s)
    seen = [-1] * len(flows)
    wire = [
        (ipaddress.ip_address(a).packed, ipaddress.ip_address(b).packed)
        for a, b in zip(flows.address_strings("src"), flows.address_strings("dst"), strict=True)
    ]

    def drain(timeout: float) -> None:
        ready, _, _ = select.select(sniffers, [], [], timeout)
        for s in ready:
            while True:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    break
                flow = _flow_id(data, flows, wire)
                if flow is not None:
                    seen[flow] = sniffers.index(s)

    try:
        for i in range(len(flows)):
            send(i)
            if i % 100 == 99:
                drain(0)
        deadline = time.monotonic() + 5
        while -1 in seen and time.monotonic() < deadline:
            drain(0.1)
    finally:
        for s in sniffers:
            s.close()
    return seen


def forward_packets(lab, flows: FlowArrays) -> list[int]:
    src, dst = flows.address_strings("src"), flows.address_strings("dst")

    def run() -> list[int]:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as inject:
            inject.bind(("cpeer", 0))
            return observe(
                lab, flows, lambda i: inject.send(frame(flows, i, lab["cin_mac"], src[i], dst[i]))
            )

    return in_netns(lab["ns"], run)


def send_from_sockets(lab, flows: FlowArrays) -> list[int]:
    src, dst = flows.address_strings("src"), flows.address_strings("dst")
    family = socket.AF_INET if flows.family == 4 else socket.AF_INET6

    def send(i: int) -> None:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((src[i], int(flows.sport[i])))
            s.sendto(MAGIC + struct.pack("!I", i), (dst[i], int(flows.dport[i])))

    return in_netns(lab["ns"], lambda: observe(lab, flows, send))


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("policy,fields", SETTINGS)
def test_forwarded_packets_match_model(lab, family, policy, fields):
    configure(lab, family, policy, fields)
    flows = random_flows(np.random.default_rng(1000 + policy * 100 + fields), family, N_FLOWS)
    got = forward_packets(lab, flows)
    assert mismatches(predict(flows, policy, fields, forwarded=True), got, flows) == []


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("policy,fields", SETTINGS)
def test_socket_sent_packets_match_local_model(lab, family, policy, fields):
    configure(lab, family, policy, fields)
    rng = np.random.default_rng(2000 + policy * 100 + fields)
    flows = random_flows(rng, family, N_FLOWS, local=True, icmp=False)
    flows = FlowArrays(
        flows.src, flows.dst, np.full(len(flows), 17), flows.sport, flows.dport, family
    )
    got = send_from_sockets(lab, flows)
    assert mismatches(predict(flows, policy, fields, forwarded=False), got, flows) == []
