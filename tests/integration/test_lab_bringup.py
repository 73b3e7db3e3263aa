"""`lab up` end to end on real FRR, HAProxy, ExaBGP and the agent (root).

Bring-up of the default and two-router topologies with BGP and FIB assertions on every router,
TLS traffic that lands flow for flow where the simulator says, a rogue announcement refused,
and nothing left behind: after `lab down`, after a failed `up`, and after a process that was
bringing a lab up dies midway.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anycast_ctl.lab import state
from anycast_ctl.lab.net import daemons, netns
from anycast_ctl.lab.net.cleanup import cleanup, leftovers
from anycast_ctl.lab.nodes import frr, lb as lb_node
from anycast_ctl.lab.poll import json_mismatch, wait_for
from anycast_ctl.lab.topology_up import Lab, LabUpError
from anycast_ctl.render.node_files import ApiFor, ApiProcess

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "topologies" / "default.yaml"
TWO_ROUTERS = REPO / "topologies" / "two-routers.yaml"
CLI = str(Path(sys.executable).parent / "anycast-ctl")
UP_TIMEOUT = 60.0


def _name(tag: str) -> str:
    return tag.removeprefix("acx-")


def _assert_every_router_converged(lab: Lab) -> None:
    """Every session Established (partial JSON of `show bgp neighbors json`) and every VIP in
    every router's kernel FIB over exactly the next hops that lead to its announcers."""
    for router in lab.topology.routers:
        expected = {
            str(
                (s.downstream if s.upstream.node == router.name else s.upstream).interface.ipv4.ip
            ): {"bgpState": "Established"}
            for s in lab.plan.sessions_of(router.name)
        }

        def sessions_up(router=router.name, expected=expected):
            return (
                json_mismatch(expected, frr.vtysh_json(lab.tag, router, "show bgp neighbors json"))
                is None
            )

        wait_for(sessions_up, 15, what=f"{router.name} sessions Established")
        for vip in lab.topology.vips:
            want = lab.expected_nexthops(router.name, vip.name)
            assert want, f"{vip.name} has announcers reachable from {router.name}"

            def in_fib(r: str = router.name, v: str = vip.name, w: set[str] = want) -> list[str]:
                hops = lab.fib_nexthops(r, v)
                return hops if set(hops) == w else []

            got = wait_for(
                in_fib,
                15,
                what=f"{router.name} FIB for {vip.name}",
            )
            assert len(got) == len(want)  # each next hop once: a real ECMP group, no duplicates
    assert lab.converged() == []  # also every IPv6 session, by the lab's own check


def _assert_traffic_as_predicted(lab: Lab, connections: int) -> None:
    result = lab.traffic(connections)
    agree, total = result.agreement()
    assert not result.failed(), [f"{f.src}:{f.sport} {f.error}" for f in result.failed()[:5]]
    assert (agree, total) == (connections, connections), [
        f"{f.src}:{f.sport}->{f.dst}: {f.lb} vs predicted {f.predicted}"
        for f in result.mismatches()[:5]
    ]
    announcers = {lb.name for lb in lab.topology.lbs if lb.vips}
    assert set(result.shares()) == announcers  # every LB node carried some of it
    print(f"\n{lab.name}: {agree}/{total} flows as predicted; shares {result.shares()}")


def test_default_topology_comes_up_converges_and_traffic_lands_as_predicted(lab_tag):
    lab = Lab.up(DEFAULT, tag=lab_tag, timeout=UP_TIMEOUT)
    print(f"\ndefault: up in {lab.bringup_seconds:.2f}s")
    _assert_every_router_converged(lab)
    status = lab.status()
    assert status["converged"], status["problems"]
    assert all(status["namespaces"].values())
    for lb in ("lb1", "lb2", "lb3"):
        answer = status["agents"][lb]
        assert (
            json_mismatch(
                {"ok": True, "node": lb, "vips": [{"address": "192.0.2.10/32", "announced": True}]},
                answer,
            )
            is None
        ), answer
    _assert_traffic_as_predicted(lab, 300)
    _assert_lb_nodes_reach_each_other(lab)


def _assert_lb_nodes_reach_each_other(lab: Lab) -> None:
    """The second chance's underlay: every LB node's kernel routes each other LB node's
    underlay address through their router, over LB<->router links of 1550 bytes."""
    lbs = [lb.name for lb in lab.topology.lbs]
    for lb in lbs:
        ns = lab.namespace(lb)
        for peer in lbs:
            if peer != lb:
                underlay = str(lab.plan.interface(peer, "r1").ipv4.ip)
                (hop,) = netns.fib_routes(ns, f"{underlay}/32")
                assert hop["gateway"] == str(lab.plan.interface("r1", lb).ipv4.ip), (lb, peer, hop)
        for ns_name, device in ((ns, "eth-r1"), (lab.namespace("r1"), f"eth-{lb}")):
            mtu = daemons.run(lab.tag, ["ip", "-j", "link", "show", "dev", device], netns=ns_name)
            assert json.loads(mtu.stdout)[0]["mtu"] == 1550, (ns_name, device)


def test_two_router_topology_comes_up_converges_and_traffic_lands_as_predicted(lab_tag):
    lab = Lab.up(TWO_ROUTERS, tag=lab_tag, timeout=UP_TIMEOUT)
    print(f"\ntwo-routers: up in {lab.bringup_seconds:.2f}s")
    _assert_every_router_converged(lab)
    assert set(lab.fib_nexthops("r1", "api")) == {"lb3", "lb4"}  # only lb3 and lb4 serve api
    _assert_traffic_as_predicted(lab, 400)


def _dual_stack(tmp_path: Path) -> Path:
    """The default topology with an IPv6 VIP beside the IPv4 one and an IPv6 client prefix."""
    text = DEFAULT.read_text().replace("name: default", "name: dual")
    text = text.replace(
        "prefixes: [198.18.1.0/24]", 'prefixes: [198.18.1.0/24, "2001:db8:c1::/64"]'
    )
    text = text.replace("vips: [web]}", "vips: [web, web6]}")
    web = "  - {name: web, address: 192.0.2.10, port: 443, backends: [be1, be2]}\n"
    assert text.count(web) == 1 and text.count("vips: [web, web6]}") == 3
    text = text.replace(
        web, web + '  - {name: web6, address: "2001:db8:f::10", port: 443, backends: [be1, be2]}\n'
    )
    path = tmp_path / "dual.yaml"
    path.write_text(text)
    return path


def test_dual_stack_traffic_lands_as_predicted_over_ipv4_and_ipv6(lab_tag, tmp_path):
    lab = Lab.up(_dual_stack(tmp_path), tag=lab_tag, timeout=UP_TIMEOUT)
    _assert_every_router_converged(lab)
    assert set(lab.bgp_sessions("r1")) == {"lb1", "lb2", "lb3", "lb1-v6", "lb2-v6", "lb3-v6"}
    result = lab.traffic(300)
    assert sum(":" in f.dst for f in result.flows) == 150
    assert not result.failed(), [f"{f.src}:{f.sport} {f.error}" for f in result.failed()[:5]]
    assert result.agreement() == (300, 300), [
        f"[{f.src}]:{f.sport}: {f.lb} vs predicted {f.predicted}" for f in result.mismatches()[:5]
    ]


ROGUE_API = textwrap.dedent("""
    import sys
    for line in ("announce route 192.0.2.10/32 next-hop self",   # web: lb1's own VIP
                 "announce route 192.0.2.20/32 next-hop self",   # api: only lb3 and lb4 may
                 "announce route 203.0.113.0/24 next-hop self"): # not a VIP at all
        sys.stdout.write(line + "\\n")
        sys.stdout.flush()
    for _ack in sys.stdin:   # ExaBGP acks each command; read until it closes the pipe
        pass
""")


def _script_api(name: str, text: str) -> ApiFor:
    """ExaBGP splits its `run` line on whitespace: an API process must be a file, not `-c CODE`.
    It is one of the LB node's files, which ExaBGP's user can read (a test's tmp_path is root's)."""
    return lambda lb, conf_dir: ApiProcess((sys.executable, str(conf_dir / name)), {name: text})


def test_rogue_announcement_is_refused_by_every_router(lab_tag):
    lab = Lab.up(TWO_ROUTERS, tag=lab_tag, timeout=UP_TIMEOUT)
    daemons.stop(lab.daemon("lb1", "exabgp"))
    lab.start_exabgp("lb1", api=_script_api("rogue_api.py", ROGUE_API))

    for router in ("r1", "r2"):
        lb1 = str(lab.plan.interface("lb1", router).ipv4.ip)
        query = f"show bgp ipv4 unicast neighbors {lb1}"

        def received_all(router=router, query=query):
            # The Adj-RIB-In (soft-reconfiguration inbound): what lb1 sent, before the policy.
            got = frr.vtysh_json(lab.tag, router, f"{query} received-routes json").get(
                "receivedRoutes", {}
            )
            return {"192.0.2.10/32", "192.0.2.20/32", "203.0.113.0/24"} <= set(got)

        wait_for(received_all, 20, what=f"{router} to receive lb1's three announcements")
        accepted = frr.vtysh_json(lab.tag, router, f"{query} routes json").get("routes", {})
        assert set(accepted) == {"192.0.2.10/32"}, f"{router} accepted {sorted(accepted)} from lb1"
        wait_for(
            lambda r=router: "lb1" in lab.fib_nexthops(r, "web"),
            20,
            what=f"{router} web via lb1 again",
        )
        assert set(lab.fib_nexthops(router, "api")) == {"lb3", "lb4"}, (
            "lb1 must not join api's ECMP set"
        )
        rib = frr.vtysh_json(lab.tag, router, "show bgp ipv4 unicast json")["routes"]
        assert "203.0.113.0/24" not in rib
        assert {p["peerId"] for p in rib["192.0.2.20/32"]} == {
            str(lab.plan.interface(lb, router).ipv4.ip) for lb in ("lb3", "lb4")
        }
        assert netns.fib_routes(lab.namespace(router), "203.0.113.0/24") == []


def test_lab_cli_up_status_down_leaves_nothing(make_lab_tag):
    tag = make_lab_tag()
    name = _name(tag)
    up = subprocess.run(
        [CLI, "lab", "up", str(DEFAULT), "--name", name],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    assert f"lab {name} up in" in up.stdout
    status = subprocess.run(
        [CLI, "lab", "status", name, "--json"], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert (
        json_mismatch(
            {"converged": True, "routers": {"r1": {"fib": {"web": ["lb1", "lb2", "lb3"]}}}},
            _sorted_fib(json.loads(status.stdout)),
        )
        is None
    )
    again = subprocess.run(
        [CLI, "lab", "up", str(DEFAULT), "--name", name], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1 and "already running" in again.stderr  # refuses to clobber
    ran = subprocess.run(
        [CLI, "lab", "exec", "c1", "--name", name, "--", "ip", "-4", "-o", "addr", "show", "lo"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ran.returncode == 0 and "100.64.255." in ran.stdout
    down = subprocess.run([CLI, "lab", "down", name], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert "removed 7 namespaces" in down.stdout
    assert not leftovers(tag), str(leftovers(tag))


def _sorted_fib(status: dict) -> dict:
    for info in status["routers"].values():
        info["fib"] = {vip: sorted(hops) for vip, hops in info.get("fib", {}).items()}
    return status


def test_failed_up_removes_everything_it_created(lab_tag, monkeypatch):
    # An LB's API process that announces nothing: BGP comes up, the VIP never reaches a FIB.
    silent = _script_api("silent_api.py", "import sys\nfor _ in sys.stdin:\n    pass\n")
    with pytest.raises(LabUpError) as failed:
        Lab.up(DEFAULT, tag=lab_tag, timeout=4, api=silent)
    message = str(failed.value)
    assert "not converged" in message and "web (192.0.2.10/32) via nothing" in message
    assert "bgpd.log" in message  # the relevant daemon's log tail is quoted
    assert not leftovers(lab_tag), str(leftovers(lab_tag))

    monkeypatch.setattr(lb_node, "HAPROXY", "/bin/false")  # a daemon that dies at start
    with pytest.raises(LabUpError, match=r"haproxy.* exited"):
        Lab.up(DEFAULT, tag=lab_tag, timeout=UP_TIMEOUT)
    assert not leftovers(lab_tag), str(leftovers(lab_tag))


def test_cleanup_after_a_bringup_that_died_midway_leaves_nothing(lab_tag):
    """The process bringing the lab up is SIGKILLed once daemons run: no finally, no cleanup of
    its own. Cleanup by tag, as the test fixture does after any failed test, still finds all."""
    code = (
        "from anycast_ctl.lab.topology_up import Lab; "
        f"Lab.up({str(DEFAULT)!r}, tag={lab_tag!r}, timeout=60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, start_new_session=True)
    try:
        wait_for(
            lambda: any(d.name == "haproxy" for d in _recorded(lab_tag)), 60, what="HAProxy started"
        )
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert any(d.running() for d in _recorded(lab_tag))  # the daemons outlived their parent
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
    report = cleanup(lab_tag)
    assert report.namespaces and (report.terminated or report.killed)
    assert not leftovers(lab_tag), str(leftovers(lab_tag))


def _recorded(tag: str) -> list[daemons.Daemon]:
    st = state.load(tag)
    return [
        daemons.Daemon(tag, r.node, r.name, r.pid, r.start_time, tuple(r.argv))
        for r in (st.daemons if st else [])
    ]
