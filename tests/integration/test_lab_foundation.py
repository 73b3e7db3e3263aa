"""The lab's foundations on a real kernel and real FRR (root).

Namespaces, veths and addresses; an FRR router with LB peers (FRR instances standing in for
ExaBGP) over MD5 sessions, a VIP learnt into the kernel FIB as ECMP, a rogue prefix and a
wrong key refused; and cleanup that leaves nothing, also when a test dies midway.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anycast_ctl.errors import UserError
from anycast_ctl.lab import state
from anycast_ctl.lab.net import daemons, netns
from anycast_ctl.lab.net.cleanup import cleanup, leftovers
from anycast_ctl.lab.nodes.files import write_files
from anycast_ctl.lab.nodes.frr import start_frr, vtysh_json
from anycast_ctl.lab.poll import json_mismatch, wait_for
from anycast_ctl.render.frr import Neighbor, RouterPlan, render_frr
from anycast_ctl.render.node_files import frr_files

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]
VIP, ROGUE = "192.0.2.10/32", "192.0.2.11/32"


def _link(tag: str, a: str, b: str, index: int) -> tuple[str, str]:
    """Veth a<->b with 10.100.<index>.1/30 on a and .2 on b; returns both addresses."""
    ns_a, ns_b = f"{tag}-{a}", f"{tag}-{b}"
    netns.add_veth(ns_a, f"eth-{b}", ns_b, f"eth-{a}")
    addr_a, addr_b = f"10.100.{index}.1", f"10.100.{index}.2"
    netns.add_address(ns_a, f"eth-{b}", f"{addr_a}/30")
    netns.add_address(ns_b, f"eth-{a}", f"{addr_b}/30")
    netns.set_link_up(ns_a, f"eth-{b}")
    netns.set_link_up(ns_b, f"eth-{a}")
    return addr_a, addr_b


def _start_frr(tag: str, node: str, config_text: str) -> None:
    """Write the node's FRR files as the lab does, then start zebra and bgpd on them."""
    write_files(
        state.state_dir(tag),
        frr_files(node, config_text, per_daemon=True),
        frr_nodes=frozenset({node}),
    )
    start_frr(tag, node)


def test_namespaces_veths_addresses_routes_and_sysctls(lab_tag) -> None:
    a = netns.create_namespace(lab_tag, "a")
    b = netns.create_namespace(lab_tag, "b")
    assert a.name == f"{lab_tag}-a"
    with pytest.raises(netns.NamespaceExistsError, match="already exists"):
        netns.create_namespace(lab_tag, "a")
    with pytest.raises(UserError, match="1-15 of"):
        netns.add_veth(a.name, "x" * 16, b.name, "ok")

    netns.add_veth(a.name, "eth-b", b.name, "eth-a")
    assert netns.link_names(a.name) == ["eth-b", "lo"]
    assert netns.link_names(b.name) == ["eth-a", "lo"]
    netns.add_address(a.name, "eth-b", "10.9.0.1/30")
    netns.add_address(a.name, "eth-b", "2001:db8:9::1/64")
    netns.add_address(b.name, "eth-a", "10.9.0.2/30")
    netns.add_address(b.name, "eth-a", "2001:db8:9::2/64")
    netns.set_link_up(a.name, "eth-b")
    netns.set_link_up(b.name, "eth-a")
    netns.add_default_route(b.name, "10.9.0.1")
    netns.add_default_route(b.name, "2001:db8:9::1")
    netns.add_route(a.name, "198.51.100.0/24", gateway="10.9.0.2")

    assert netns.fib_routes(b.name, "0.0.0.0/0") == [
        {"gateway": "10.9.0.1", "ifname": "eth-a", "weight": 1}
    ]
    assert netns.fib_routes(b.name, "::/0") == [
        {"gateway": "2001:db8:9::1", "ifname": "eth-a", "weight": 1}
    ]
    assert netns.fib_routes(a.name, "198.51.100.0/24")[0]["gateway"] == "10.9.0.2"
    assert netns.fib_routes(a.name, "198.51.100.0/25") == []  # exact prefix only

    netns.enable_forwarding(a.name)
    netns.set_multipath_hash(a.name, policy=3, fields=0x37, seed=4242)
    assert netns.get_sysctl(a.name, "net.ipv4.ip_forward") == "1"
    assert netns.get_sysctl(a.name, "net.ipv6.fib_multipath_hash_policy") == "3"
    assert netns.get_sysctl(a.name, "net.ipv4.fib_multipath_hash_fields") == str(0x37)
    assert netns.get_sysctl(a.name, "net.ipv4.fib_multipath_hash_seed") == "4242"
    assert netns.get_sysctl(b.name, "net.ipv4.ip_forward") == "0"  # per namespace, not global


def _tcp_ext(pid: int) -> dict[str, int]:
    """TcpExt counters of the network namespace `pid` lives in."""
    lines = [ln.split() for ln in Path(f"/proc/{pid}/net/netstat").read_text().splitlines()]
    names, values = [ln for ln in lines if ln[0] == "TcpExt:"]
    return dict(zip(names[1:], map(int, values[1:]), strict=True))


def test_frr_router_learns_vip_from_md5_peers_as_ecmp_and_refuses_rogue_and_wrong_key(
    make_lab_tag,
) -> None:
    tag = make_lab_tag("acx-h7-")
    for node in ("r1", "lba", "lbb", "lbc"):
        netns.create_namespace(tag, node)
    netns.enable_forwarding(f"{tag}-r1")
    peers = {}
    for index, lb in enumerate(("lba", "lbb", "lbc"), start=1):
        peers[lb] = _link(tag, "r1", lb, index)
        netns.add_address(f"{tag}-{lb}", "lo", VIP)
    netns.add_address(f"{tag}-lba", "lo", ROGUE)

    asns = {"lba": 65101, "lbb": 65102, "lbc": 65103}
    r1 = RouterPlan(
        name="r1",
        asn=65000,
        router_id="10.255.0.1",
        maximum_paths=8,
        neighbors=tuple(
            Neighbor(
                name=lb,
                address=peers[lb][1],
                remote_as=asns[lb],
                password="lab-key",
                accept=(VIP,),
                max_prefix=1,
                is_lb=True,
            )
            for lb in peers
        ),
    )
    _start_frr(tag, "r1", render_frr(r1))
    for lb in peers:
        own = RouterPlan(
            name=lb,
            asn=asns[lb],
            router_id=peers[lb][1],
            networks=(VIP, ROGUE) if lb == "lba" else (VIP,),
            neighbors=(
                Neighbor(
                    name="r1",
                    address=peers[lb][0],
                    remote_as=65000,
                    password="wrong-key" if lb == "lbc" else "lab-key",
                    accept="any",
                    max_prefix=10,
                ),
            ),
        )
        _start_frr(tag, lb, render_frr(own))

    # Both good peers establish and the VIP is ECMP over them in r1's kernel FIB.
    expect = {
        "ipv4Unicast": {"peers": {peers[lb][1]: {"state": "Established"} for lb in ("lba", "lbb")}}
    }
    wait_for(
        lambda: json_mismatch(expect, vtysh_json(tag, "r1", "show bgp summary json")) is None,
        20,
        what="sessions r1<->lba, r1<->lbb Established",
    )

    def two_hops() -> list[netns.NextHop] | None:
        hops = netns.fib_routes(f"{tag}-r1", VIP)
        return hops if len(hops) == 2 else None

    hops = wait_for(two_hops, 10, what=f"{VIP} ECMP over lba and lbb")
    assert hops is not None
    assert sorted((h["gateway"], h["ifname"]) for h in hops) == [
        (peers["lba"][1], "eth-lba"),
        (peers["lbb"][1], "eth-lbb"),
    ]

    # lba does send the rogue prefix; r1's prefix-list drops it before it counts or installs.
    sent = vtysh_json(
        tag, "lba", f"show bgp ipv4 unicast neighbors {peers['lba'][0]} advertised-routes json"
    )
    assert ROGUE in sent["advertisedRoutes"]
    summary = vtysh_json(tag, "r1", "show bgp summary json")["ipv4Unicast"]["peers"]
    assert summary[peers["lba"][1]]["pfxRcd"] == 1  # so maximum-prefix 1 does not trip on it
    assert netns.fib_routes(f"{tag}-r1", ROGUE) == []

    # The wrong MD5 key: r1's kernel drops lbc's signed segments, and the session never comes up.
    zebra_pid = next(d for d in daemons.tagged_pids(tag) if f"{tag}-r1" in daemons.cmdline(d))
    wait_for(
        lambda: _tcp_ext(zebra_pid).get("TCPMD5Failure", 0) > 0,
        10,
        what="r1's kernel to count an MD5 failure from lbc",
    )
    lbc = vtysh_json(tag, "r1", "show bgp summary json")["ipv4Unicast"]["peers"][peers["lbc"][1]]
    assert lbc["state"] != "Established"

    report = cleanup(tag)
    assert len(report.terminated) == 8  # zebra + bgpd on four nodes, all ended by SIGTERM
    assert report.killed == []
    assert len(report.namespaces) == 4
    assert not leftovers(tag), str(leftovers(tag))


def test_cleanup_finds_daemonized_stopped_term_ignoring_and_untagged_processes(
    make_lab_tag,
) -> None:
    tag, other = make_lab_tag("acx-h7-"), make_lab_tag("acx-h7-")
    ns = netns.create_namespace(tag, "n1").name
    pidfile = state.state_dir(tag) / "orphan.pid"
    # Daemonizes: the launcher exits, its orphan is found through the pid file and the tag.
    orphan = daemons.spawn(
        tag,
        "n1",
        ["sh", "-c", f"sleep 600 & echo $! > {pidfile}"],
        netns=ns,
        pidfile=pidfile,
        name="orphan",
    )
    # Ignores SIGTERM (and so does the exec'd sleep): needs SIGKILL.
    stubborn = daemons.spawn(tag, "n1", ["sh", "-c", "trap '' TERM; exec sleep 600"], netns=ns)
    # Hung: SIGSTOPped processes only see SIGTERM once continued.
    hung = daemons.spawn(tag, "n1", ["sleep", "600"], netns=ns)
    os.kill(hung.pid, signal.SIGSTOP)
    # Not started by us and not tagged, but living in the lab's namespace.
    env = {k: v for k, v in os.environ.items() if k != "ANYCAST_CTL_LAB"}
    stray = subprocess.Popen(
        ["ip", "netns", "exec", ns, "sleep", "600"], env=env, start_new_session=True
    )
    # Another lab's process must survive this lab's cleanup.
    bystander = daemons.spawn(other, "x", ["sleep", "600"])
    wait_for(
        lambda: stray.pid in daemons.all_pids() and _in_ns(stray.pid, ns), 5, what="stray in ns"
    )

    assert orphan.running() and orphan.pid != stubborn.pid
    report = cleanup(tag, timeout=1.0)
    stray.wait(timeout=5)

    assert stubborn.pid in report.killed
    assert {orphan.pid, hung.pid, stray.pid} <= set(report.terminated)
    assert not any(d.running() for d in (orphan, stubborn, hung))
    assert report.namespaces == [ns]
    assert not leftovers(tag), str(leftovers(tag))
    assert bystander.running()


def _in_ns(pid: int, ns: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return False


def test_lab_tag_fixture_cleans_up_after_a_test_that_dies_midway(tmp_path) -> None:
    """Run a test that starts a namespace and a daemon, then raises; the fixture must leave
    nothing behind (and say nothing is left), and the failure must be the test's own."""
    inner = tmp_path / "test_dies_midway.py"
    inner.write_text(
        textwrap.dedent("""
        import os
        from pathlib import Path
        from anycast_ctl.lab.net import daemons, netns
        from anycast_ctl.lab import state

        def test_dies_midway(make_lab_tag):
            tag = make_lab_tag("acx-h7-in")
            ns = netns.create_namespace(tag, "r1").name
            sleeper = daemons.spawn(tag, "r1", ["sleep", "600"], netns=ns)
            out = Path(os.environ["ACX_INNER_OUT"])
            out.write_text(f"{tag} {sleeper.pid} {sleeper.start_time}")
            raise RuntimeError("boom midway")
    """)
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.integration.conftest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(inner),
        ],
        cwd=REPO,
        env={**os.environ, "ACX_INNER_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    tag, pid, started = out.read_text().split()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "RuntimeError: boom midway" in done.stdout
    assert "1 failed" in done.stdout and "error" not in done.stdout.splitlines()[-1]
    assert not daemons.is_running(int(pid), int(started))
    assert not leftovers(tag), str(leftovers(tag))
