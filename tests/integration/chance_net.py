"""The namespaces of the second-chance root tests (test_chance_forwarding*.py), either family.

c1, r1 and lb1..lb3 of a topology (addresses, routes, MTUs and r1's hashing sysctls from
render/hostnet.py; no BGP: r1 gets the ECMP route BGP would give it for every VIP, next hops
in LB order), the test's SERVER script on every LB node (it prints "ready" once it listens on
the VIPs) and its CLIENT script on c1, asked one line at a time:

    with chance_net(TOPOLOGY, "sc", (VIP,), SERVER, CLIENT) as net:
        net.ask("open ...")
        net.route(("lb2", "lb3"))   # lb1 withdrawn

The VIPs name the address families: an IPv6 one gets an IPv6 route and address beside the
IPv4 ones. Namespaces are named acx-<kind><pid>-<node> (ANYCAST_TEST_LAB_PREFIX=cm:
cm-<kind><pid>-<node>, as conftest.py names labs), removed even when the test fails, and
proven gone afterwards.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from pathlib import Path

from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.render.hostnet import setup_commands

NODES = ("c1", "r1", "lb1", "lb2", "lb3")
LBS = ("lb1", "lb2", "lb3")


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{shlex.join(argv)}: {done.stderr}"
    return done.stdout


def _ipv6(address: str) -> bool:
    return ip_address(address).version == 6


@dataclass
class Net:
    topo: Topology
    ns: dict[str, str]
    vips: tuple[str, ...]
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    client: subprocess.Popen[str] | None = None

    def ask(self, line: str) -> str:
        assert self.client is not None and self.client.stdin and self.client.stdout
        self.client.stdin.write(line + "\n")
        self.client.stdin.flush()
        return self.client.stdout.readline().strip()

    def route(self, lbs: tuple[str, ...]) -> None:
        """r1's route to every VIP: one next hop per LB node of `lbs`, in that order."""
        plan = self.topo.address_plan()
        for vip in self.vips:
            hops = []
            for lb in lbs:
                theirs = plan.interface(lb, "r1")
                address = theirs.ipv6 if _ipv6(vip) else theirs.ipv4
                assert address is not None, f"the {lb}-r1 link has no address for {vip}"
                hops += ["nexthop", "via", str(address.ip), "dev", f"eth-{lb}"]
            family = "-6" if _ipv6(vip) else "-4"
            run("ip", family, "-n", self.ns["r1"], "route", "replace", vip, *hops)


def _client_source(topo: Topology) -> str | None:
    """c1's first IPv6 address (its first IPv6 prefix's ::1), None without one."""
    (c1,) = [c for c in topo.clients if c.name == "c1"]
    prefixes = [n for n in map(ip_network, c1.prefixes) if n.version == 6]
    return str(prefixes[0].network_address + 1) if prefixes else None


@contextmanager
def chance_net(
    topology: Path, kind: str, vips: tuple[str, ...], server: str, client: str
) -> Iterator[Net]:
    prefix = f"{os.environ.get('ANYCAST_TEST_LAB_PREFIX', 'acx')}-{kind}"
    topo = load_topology(topology)
    plan = topo.address_plan()
    ns = {n: f"{prefix}{os.getpid()}-{n}" for n in NODES}
    made: list[str] = []
    state = Net(topo, ns, vips)
    try:
        for name in ns.values():
            run("ip", "netns", "add", name)
            made.append(name)
            run("ip", "-n", name, "link", "set", "dev", "lo", "up")
        for a, b in [("c1", "r1"), *(("r1", lb) for lb in LBS)]:
            run("ip", "link", "add", f"eth-{b}", "netns", ns[a], "type", "veth",
                "peer", "name", f"eth-{a}", "netns", ns[b])  # fmt: skip
            run("ip", "-n", ns[a], "link", "set", "dev", f"eth-{b}", "up")
            run("ip", "-n", ns[b], "link", "set", "dev", f"eth-{a}", "up")
        if any(_ipv6(vip) for vip in vips):
            # The default route's IPv6 source must be an interface address (as lab/net/build.py
            # does): a `src` only a local route covers is refused.
            source = _client_source(topo)
            assert source is not None, f"{topology}: c1 has no IPv6 prefix for {vips}"
            run("ip", "-n", ns["c1"], "-6", "addr", "add", f"{source}/128", "dev", "lo", "nodad")
        # No backend namespaces: their links and routes are left out.
        backends = {str(plan.nodes[be.name].loopback_v4) for be in topo.backends}
        for node in NODES:
            for cmd in setup_commands(topo, node, plan):
                if "eth-be" not in cmd and not any(b in cmd for b in backends):
                    run("ip", "netns", "exec", ns[node], *shlex.split(cmd))
        for lb in LBS:
            # The underlay (every LB node reaches the others through r1) comes with
            # setup_commands, as in `lab up`.
            for vip in vips:
                if _ipv6(vip):
                    run("ip", "-n", ns[lb], "-6", "addr", "add", f"{vip}/128", "dev", "lo", "nodad")
                else:
                    run("ip", "-n", ns[lb], "addr", "add", f"{vip}/32", "dev", "lo")
            server_proc = subprocess.Popen(
                ["ip", "netns", "exec", ns[lb], "python3", "-c", server, lb],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            state.procs.append(server_proc)
            ready = server_proc.stdout.readline().strip() if server_proc.stdout else ""
            assert ready == "ready", f"the server on {lb} said {ready!r}"
        state.route(LBS)
        state.client = subprocess.Popen(
            ["ip", "netns", "exec", ns["c1"], "python3", "-c", client],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        state.procs.append(state.client)
        yield state
    finally:
        for proc in state.procs:
            proc.kill()
            proc.wait(timeout=10)
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    assert not [
        n for n in run("ip", "netns", "list").split() if n.startswith(f"{prefix}{os.getpid()}-")
    ]
