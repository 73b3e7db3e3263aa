"""The rendered default lab (lab/default, as `lab render` writes it) deployed with podman the
way containerlab does it (lab/containers/podman.py: containers from `make images`' images
with the rendering's cmd, binds and sysctls, a veth pair per link moved into the containers'
namespaces, then every `exec:` line). This tests containerlab's semantics, not containerlab,
which cannot be installed here.

Asserts: every BGP session up, the VIP in r1's FIB through every LB, traffic from c1 on the
LBs the simulator predicts from r1's kernel next hops, and a killed HAProxy withdrawn from the
FIB (and back once the LB's supervisor restarted it). Skipped, with the reason, where podman
or the images are missing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from podman_support import require_images

from anycast_ctl.config.topology import load_topology
from anycast_ctl.lab.containers import podman
from anycast_ctl.lab.experiments.container_traffic import fib_nexthops, run_traffic
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.render.containerlab import clab_file_name, render_containerlab

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def deployed(request, tmp_path: Path, lab_tag: str):
    reason = podman.unavailable()
    if reason:
        pytest.skip(reason)
    require_images()
    topo = load_topology(REPO / "topologies" / "default.yaml")
    render_containerlab(topo, tmp_path)
    try:
        dep = podman.deploy(tmp_path / topo.name / clab_file_name(topo), lab_tag)
        yield dep, topo
    finally:
        report = getattr(request.node, "lab_report_call", None)
        if report is None or report.failed:
            for name in podman.tagged_containers(lab_tag):
                logs = podman.podman(lab_tag, "logs", "--tail", "30", name)
                print(f"--- {name}\n{logs.stdout}{logs.stderr}")
        podman.destroy(lab_tag)
        assert podman.tagged_containers(lab_tag) == [], "containers left after destroy"


def _established(dep: podman.Deployment, router: str) -> dict[str, str]:
    out = dep.exec(router, "vtysh", "-c", "show bgp ipv4 unicast summary json", timeout=15)
    peers = json.loads(out.stdout or "{}").get("peers", {}) if out.ok else {}
    return {peer: info.get("state", "") for peer, info in peers.items()}


def test_rendered_default_lab_converges_carries_predicted_traffic_and_withdraws_a_dead_haproxy(
    deployed,
) -> None:
    dep, topo = deployed
    router, vip = topo.routers[0].name, topo.vips[0].name
    lbs = sorted(lb.name for lb in topo.lbs)

    sessions = wait_for(
        lambda: (s := _established(dep, router)) and all(v == "Established" for v in s.values()),
        timeout=90,
        interval=1.0,
        what="every BGP session of r1 Established",
    )
    assert sessions
    wait_for(
        lambda: sorted(fib_nexthops(dep, topo, router, vip)) == lbs,
        timeout=60,
        interval=0.5,
        what=f"{vip} in {router}'s FIB through {lbs}",
    )
    assert all(dep.running().values()), dep.running()

    result = run_traffic(dep, topo, connections=120)
    assert result.failed() == [], result.failed()[:3]
    assert result.agreement() == (120, 120), result.mismatches()[:5]
    assert sorted(result.shares()) == lbs  # every LB carried some, as predicted

    # HAProxy killed on lb1: the agent withdraws, the router's FIB drops lb1; the supervisor
    # restarts HAProxy after its 1 s backoff and the agent announces again.
    status = json.loads(dep.exec("lb1", "anycast-ctl-supervise", "status").stdout)
    pid = next(p["pid"] for p in status["programs"] if p["name"] == "haproxy")
    killed = time.monotonic()
    assert dep.exec("lb1", "kill", "-KILL", str(pid)).ok
    wait_for(
        lambda: "lb1" not in fib_nexthops(dep, topo, router, vip),
        timeout=5,
        interval=0.02,
        what="lb1 withdrawn from r1's FIB after its HAProxy was killed",
    )
    withdrawn = time.monotonic() - killed
    print(f"HAProxy killed -> lb1 out of r1's FIB in {withdrawn * 1000:.0f} ms")
    assert sorted(fib_nexthops(dep, topo, router, vip)) in (
        [lb for lb in lbs if lb != "lb1"],
        lbs,  # already back (restarted) by the time of this read
    )
    wait_for(
        lambda: sorted(fib_nexthops(dep, topo, router, vip)) == lbs,
        timeout=30,
        interval=0.2,
        what="lb1 back in r1's FIB once HAProxy was restarted",
    )
    assert all(dep.running().values()), dep.running()
