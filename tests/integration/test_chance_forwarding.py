"""Second chance in real namespaces: established connections survive their router moving them.

The default topology's c1, r1 and lb1..lb3 (addresses, routes and r1's hashing sysctls from
render/hostnet.py; no BGP: r1 gets the ECMP route BGP would give it, next hops in file order),
a TCP echo listener on the VIP of every LB node that answers with its own name, and the
second-chance table of render/chance.py applied by chance/apply.py. Withdrawing lb1 is r1's
route losing lb1: the connections it moves to another node must still be answered by the
node that accepted them, while new connections (SYNs) are served where r1 sends them.

The namespaces come from chance_net.py: acx-sc<pid>-<node> (ANYCAST_TEST_LAB_PREFIX=cm:
cm-sc<pid>-<node>).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from chance_net import LBS, Net, chance_net, run

from anycast_ctl.chance import apply as chance
from anycast_ctl.config.topology import Topology
from anycast_ctl.render.chance import plan_for
from anycast_ctl.sim.fabric import Event, Fabric
from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.flows import FlowBatch, generate
from anycast_ctl.sim.owners import OwnerChange, forward_entries, owner_candidates, owner_change

pytestmark = pytest.mark.root
TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
VIP, PORT = "192.0.2.10", 443
FLOWS = [(f"198.18.1.{20 + i}", 41000 + 13 * i) for i in range(30)]

SERVER = r"""
import socket, sys, threading
name = sys.argv[1].encode()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.10", 443)); s.listen(128)
print("ready", flush=True)
def serve(c):
    with c:
        while data := c.recv(4096):
            if data.startswith(b"B"):  # "B<size>\n" then <size> bytes: a sink, then "done"
                head, _, rest = data.partition(b"\n")
                left = int(head[1:]) - len(rest)
                while left > 0:
                    left -= len(c.recv(1 << 20))
                data = b"done"
            c.sendall(name + b":" + data)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# One line in, one line out: "open SRC SPORT" -> "ok ID", "send ID TEXT" -> the answer
# ("reset" or "timeout" when there is none), "rtt ID N" -> N round-trip times in us.
CLIENT = r"""
import socket, sys, time
conns = []
for line in sys.stdin:
    cmd, *args = line.split()
    try:
        if cmd == "open":
            c = socket.socket(); c.settimeout(3); c.bind((args[0], int(args[1])))
            c.connect(("192.0.2.10", 443)); conns.append(c); out = f"ok {len(conns) - 1}"
        elif cmd == "send":
            c = conns[int(args[0])]; c.sendall(args[1].encode())
            out = c.recv(4096).decode() or "reset"
        elif cmd == "rtt":
            c, times = conns[int(args[0])], []
            for _ in range(int(args[1])):
                t = time.perf_counter(); c.sendall(b"x"); c.recv(4096)
                times.append(str(int((time.perf_counter() - t) * 1e6)))
            out = " ".join(times)
        elif cmd == "bulk":
            c, size = conns[int(args[0])], int(args[1])
            c.sendall(f"B{size}\n".encode()); c.settimeout(30)
            t = time.perf_counter()
            c.sendall(b"y" * size)
            answer = c.recv(4096).decode()
            out = f"{time.perf_counter() - t:.6f}" if answer.endswith("done") else answer
    except socket.timeout:
        out = "timeout"
    except OSError as exc:
        out = "reset" if "reset" in str(exc).lower() else f"error {exc}"
    print(out, flush=True)
"""


@pytest.fixture
def net() -> Iterator[Net]:
    with chance_net(TOPOLOGY, "sc", (VIP,), SERVER, CLIENT) as made:
        yield made


def _change(topo: Topology, flows: list[tuple[str, int]]) -> OwnerChange:
    n = len(flows)
    arrays = FlowArrays.from_tuples([(s, VIP, 6, p, PORT) for s, p in flows])
    batch = FlowBatch(arrays, np.zeros(n, np.int64), np.zeros(n, np.int64), np.ones(n))
    return owner_change(Fabric.from_topology(topo), Event("withdraw", "lb1"), batch)


def _likely(topo: Topology, node: str) -> tuple[str, ...]:
    (batch,) = list(generate(topo, 20_000, seed=1))
    change = owner_change(Fabric.from_topology(topo), Event("withdraw", "lb1"), batch)
    return owner_candidates(change, node)


def _apply_all(
    net: Net, change: OwnerChange, *, with_entries: bool, mtu: int | None = None
) -> None:
    for lb in LBS:
        entries = tuple(forward_entries(change, lb)) if with_entries else ()
        plan = plan_for(
            net.topo,
            lb,
            alive=frozenset(LBS),
            entries=entries,
            likely=_likely(net.topo, lb),
            mtu=mtu,
        )
        chance.apply_plan(plan, net.ns[lb])


def _open_all(net: Net) -> list[str]:
    """Open every flow and say which node answered it.

    The table goes in first, as the agent loads it before announcing: conntrack follows a
    connection only from its SYN on, and one it met mid-stream would look like a stranger.
    """
    for lb in LBS:
        plan = plan_for(net.topo, lb, alive=frozenset(LBS))
        chance.apply_plan(plan, net.ns[lb])
    owners = []
    for i, (src, sport) in enumerate(FLOWS):
        assert net.ask(f"open {src} {sport}") == f"ok {i}"
        owners.append(net.ask(f"send {i} hello").split(":")[0])
    return owners


def test_moved_connections_are_served_by_their_owner_and_syns_locally(net: Net) -> None:
    change = _change(net.topo, FLOWS)
    owners = _open_all(net)
    assert owners == [LBS[i] for i in change.before.tolist()]  # the kernel-exact model
    moved = np.flatnonzero(change.moved).tolist()
    assert len(moved) >= 10  # about half of 30 flows, own and collateral

    for with_entries in (True, False):  # per-flow entries, then the likely owners alone
        _apply_all(net, change, with_entries=with_entries)
        net.route(("lb2", "lb3"))  # lb1 withdrawn
        answers = [net.ask(f"send {i} again").split(":")[0] for i in range(len(FLOWS))]
        assert answers == owners, f"with_entries={with_entries}"
        forwarded = sum(chance.counters(net.ns[lb]).get("forwarded", 0) for lb in ("lb2", "lb3"))
        arrived = sum(chance.counters(net.ns[lb]).get("arrived", 0) for lb in ("lb1", "lb2"))
        assert forwarded >= len(moved) and arrived >= len(moved)
        net.route(LBS)

    # A new connection is served where r1 sends it now, not forwarded to a previous owner.
    net.route(("lb2", "lb3"))
    fresh = [(f"198.18.1.{120 + i}", 42000 + 17 * i) for i in range(10)]
    expected = [LBS[i] for i in _change(net.topo, fresh).after.tolist()]
    for k, (src, sport) in enumerate(fresh):
        assert net.ask(f"open {src} {sport}") == f"ok {len(FLOWS) + k}"
        assert net.ask(f"send {len(FLOWS) + k} new").split(":")[0] == expected[k]

    # Without the table a moved connection meets a node that does not know it: reset.
    for lb in LBS:
        chance.remove(net.ns[lb])
        assert not chance.present(net.ns[lb])
    assert net.ask(f"send {moved[0]} lost") == "reset"


@pytest.mark.parametrize("underlay_mtu", [1500, 1550])
def test_cost_of_a_forwarded_packet(net: Net, underlay_mtu: int) -> None:
    """Round-trip times and CPU of a connection served directly and through the second chance,
    with the default overlay MTU (1450) on a 1500 underlay, and 1500 on a 1550 underlay."""
    for lb in LBS:  # the lab's links carry UNDERLAY_MTU; the 1500 case narrows them back
        run("ip", "-n", net.ns[lb], "link", "set", "dev", "eth-r1", "mtu", str(underlay_mtu))
        run("ip", "-n", net.ns["r1"], "link", "set", "dev", f"eth-{lb}", "mtu", str(underlay_mtu))
    change = _change(net.topo, FLOWS)
    _open_all(net)
    moved = int(np.flatnonzero(change.moved)[0])
    stay = int(np.flatnonzero(~change.moved)[0])
    overlay_mtu = None if underlay_mtu == 1500 else 1500
    _apply_all(net, change, with_entries=True, mtu=overlay_mtu)
    net.route(("lb2", "lb3"))
    rounds, probes = 5, 100  # alternated, so a neighbour's load hits both alike
    rtt: dict[str, list[int]] = {"direct": [], "forwarded": []}
    for _ in range(rounds):
        for name, conn in (("direct", stay), ("forwarded", moved)):
            times = [int(x) for x in net.ask(f"rtt {conn} {probes}").split()]
            assert len(times) == probes
            rtt[name] += times
    q = {k: (statistics.median(v), statistics.quantiles(v, n=100)[98]) for k, v in rtt.items()}
    print(
        f"rtt us, {rounds * probes} probes each: direct p50 {q['direct'][0]:.0f} "
        f"p99 {q['direct'][1]:.0f}; forwarded p50 {q['forwarded'][0]:.0f} "
        f"p99 {q['forwarded'][1]:.0f}"
    )
    # One extra hop (an skb copy, VXLAN encapsulation, a second stack) and not a timer.
    assert q["forwarded"][0] < q["direct"][0] + 2000

    # CPU: the whole machine's busy time during bulk uploads, direct and forwarded, alternated.
    size, cpu = 32 << 20, {"direct": [0.0] * 0, "forwarded": [0.0] * 0}
    seconds: dict[str, list[float]] = {"direct": [], "forwarded": []}
    packets = 0
    for _ in range(rounds):
        for name, conn in (("direct", stay), ("forwarded", moved)):
            before_cpu, before_fwd = _busy(), _forwarded(net)
            answer = net.ask(f"bulk {conn} {size}")
            seconds[name].append(float(answer))
            cpu[name].append(_busy() - before_cpu)
            if name == "forwarded":
                packets += _forwarded(net) - before_fwd
    mib = size / (1 << 20)
    for name in cpu:
        print(
            f"{name}: {mib:.0f} MiB up, median {statistics.median(seconds[name]):.3f} s, "
            f"cpu median {1000 * statistics.median(cpu[name]) / mib:.1f} ms per MiB"
        )
    print(f"forwarded skbs per MiB: {packets / rounds / mib:.0f} (GRO aggregates)")
    pmtu = run("ip", "-n", net.ns["c1"], "route", "get", VIP)
    print(f"underlay mtu {underlay_mtu}, overlay {overlay_mtu or 1450}; c1: {pmtu.strip()}")


def _busy() -> float:
    """Busy CPU seconds of the whole machine (user, system, irq, softirq) from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n")[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _forwarded(net: Net) -> int:
    return sum(chance.counters(net.ns[lb]).get("forwarded", 0) for lb in LBS)
