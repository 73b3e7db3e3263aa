"""Second chance over IPv6 in real namespaces: the ip6 table keeps IPv6 connections that r1
moves, beside the ip table keeping IPv4 ones, over the one IPv4 VXLAN underlay.

c1, r1 and lb1..lb3 of tests/golden/chance/dual-stack.yaml (the default topology with an IPv6
VIP and client prefix; addresses, routes, MTUs and r1's hashing from render/hostnet.py, no
BGP: r1 gets the ECMP routes BGP would give it), an echo listener on both VIPs of every LB
node answering with its own name, and the dual-stack plans of render/chance.py applied by
chance/apply.py. Withdrawing lb1 is r1's routes losing lb1.

The namespaces come from chance_net.py: acx-sc6<pid>-<node> (ANYCAST_TEST_LAB_PREFIX=cm:
cm-sc6<pid>-<node>).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chance_net import LBS, Net, chance_net

from anycast_ctl.chance import apply as chance
from anycast_ctl.render.chance import plan_for
from anycast_ctl.sim.fabric import Event, Fabric
from anycast_ctl.sim.flows import generate
from anycast_ctl.sim.owners import forward_entries, owned_batch, owner_candidates, owner_change

pytestmark = pytest.mark.root
TOPOLOGY = Path(__file__).resolve().parents[1] / "golden" / "chance" / "dual-stack.yaml"
VIP4, VIP6, PORT = "192.0.2.10", "2001:db8:f::10", 443
FLOWS = [(f"198.18.1.{20 + i}", 41000 + 13 * i, VIP4) for i in range(12)] + [
    (f"2001:db8:c1::{0x20 + i:x}", 43000 + 11 * i, VIP6) for i in range(24)
]

SERVER = r"""
import socket, sys, threading
name = sys.argv[1].encode()
def serve(c):
    with c:
        while data := c.recv(4096):
            c.sendall(name + b":" + data)
def listen(family, address):
    s = socket.socket(family); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, 443)); s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=listen, args=(socket.AF_INET, "192.0.2.10"), daemon=True).start()
threading.Thread(target=listen, args=(socket.AF_INET6, "2001:db8:f::10"), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# "open SRC SPORT DST" -> "ok ID"; "send ID TEXT" -> the answer ("reset"/"timeout" if none).
CLIENT = r"""
import socket, sys
conns = []
for line in sys.stdin:
    cmd, *args = line.split()
    try:
        if cmd == "open":
            c = socket.socket(socket.AF_INET6 if ":" in args[0] else socket.AF_INET)
            c.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: any address of the local prefix
            c.settimeout(3); c.bind((args[0], int(args[1]))); c.connect((args[2], 443))
            conns.append(c); out = f"ok {len(conns) - 1}"
        elif cmd == "send":
            c = conns[int(args[0])]; c.sendall(args[1].encode())
            out = c.recv(4096).decode() or "reset"
    except socket.timeout:
        out = "timeout"
    except OSError as exc:
        out = "reset" if "reset" in str(exc).lower() else f"error {exc}"
    print(out, flush=True)
"""


@pytest.fixture
def net() -> Iterator[Net]:
    with chance_net(TOPOLOGY, "sc6", (VIP4, VIP6), SERVER, CLIENT) as made:
        yield made


def _apply_all(net: Net, *, with_entries: bool) -> None:
    """Every node's dual-stack plan for lb1's withdrawal: its likely previous owners (from a
    generated batch) and, with_entries, the per-flow entries of the test's own flows."""
    fabric, withdraw = Fabric.from_topology(net.topo), Event("withdraw", "lb1")
    (sample,) = [b for b in generate(net.topo, 20_000, seed=1) if b.flows.family == 4]
    likely_change = owner_change(fabric, withdraw, sample)
    changes = [
        owner_change(fabric, withdraw, owned_batch(net.topo, flows))
        for flows in (
            [(s, p, d, PORT) for s, p, d in FLOWS if d == VIP4],
            [(s, p, d, PORT) for s, p, d in FLOWS if d == VIP6],
        )
    ]
    for lb in LBS:
        entries = [e for c in changes for e in forward_entries(c, lb)] if with_entries else []
        plan = plan_for(
            net.topo,
            lb,
            alive=frozenset(LBS),
            entries=tuple(entries),
            likely=owner_candidates(likely_change, lb),
            mtu=1500,
        )
        chance.apply_plan(plan, net.ns[lb])


def test_moved_ipv6_and_ipv4_connections_are_served_by_their_owner(net: Net) -> None:
    # The tables go in before the connections open: conntrack must see their handshakes.
    for lb in LBS:
        chance.apply_plan(plan_for(net.topo, lb, alive=frozenset(LBS), mtu=1500), net.ns[lb])
    owners = []
    for i, (src, sport, dst) in enumerate(FLOWS):
        assert net.ask(f"open {src} {sport} {dst}") == f"ok {i}"
        owners.append(net.ask(f"send {i} hello").split(":")[0])
    lb1_v6 = [i for i, (o, f) in enumerate(zip(owners, FLOWS, strict=True)) if ":" in f[2]]
    lb1_v6 = [i for i in lb1_v6 if owners[i] == "lb1"]
    assert lb1_v6, f"no IPv6 flow landed on lb1: {owners}"  # those must move when lb1 goes

    for with_entries in (True, False):  # per-flow entries, then the likely owners alone
        _apply_all(net, with_entries=with_entries)
        before = sum(chance.counters(net.ns[lb]).get("forwarded", 0) for lb in LBS)
        net.route(("lb2", "lb3"))  # lb1 withdrawn, both families
        answers = [net.ask(f"send {i} again").split(":")[0] for i in range(len(FLOWS))]
        assert answers == owners, f"with_entries={with_entries}"
        forwarded = sum(chance.counters(net.ns[lb]).get("forwarded", 0) for lb in LBS) - before
        assert forwarded >= len(lb1_v6)
        net.route(LBS)

    # Without the tables an IPv6 connection of lb1 meets a node that does not know it: reset.
    net.route(("lb2", "lb3"))
    for lb in LBS:
        chance.remove(net.ns[lb])
        assert not chance.present(net.ns[lb])
    assert net.ask(f"send {lb1_v6[0]} lost") == "reset"
