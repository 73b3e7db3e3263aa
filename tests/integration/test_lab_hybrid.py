"""topologies/hybrid.yaml on real FRR, HAProxy, ExaBGP and the agent, through the console script
(root): the upstream router spreads the clients' flows over both edge routers, and every flow
lands on the LB node the simulator predicts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]
HYBRID = REPO / "topologies" / "hybrid.yaml"
CLI = str(Path(sys.executable).parent / "anycast-ctl")
CONNECTIONS = 400


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
    )


def _tx_packets(tag: str, node: str, device: str) -> int:
    done = subprocess.run(
        ["ip", "-n", f"{tag}-{node}", "-j", "-s", "link", "show", "dev", device],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    (link,) = json.loads(done.stdout)
    packets: int = link["stats64"]["tx"]["packets"]
    return packets


def test_hybrid_comes_up_spreads_over_both_edges_and_lands_as_predicted(lab_tag):
    name = lab_tag.removeprefix("acx-")
    up = _cli("lab", "up", str(HYBRID), "--name", name, "--timeout", "90")
    assert up.returncode == 0, up.stdout + up.stderr
    status = _cli("lab", "status", name, "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["converged"], data["problems"]

    before = {r: _tx_packets(lab_tag, "u1", f"eth-{r}") for r in ("r1", "r2")}
    traffic = _cli("lab", "traffic", name, "-n", str(CONNECTIONS), "--json")
    assert traffic.returncode == 0, traffic.stdout + traffic.stderr
    result = json.loads(traffic.stdout)
    assert (result["ok"], result["as_predicted"]) == (CONNECTIONS, CONNECTIONS), [
        f for f in result["flows"] if f["lb"] != f["predicted"]
    ][:5]
    assert set(result["shares"]) == {"lb1", "lb2", "lb3"}
    assert result["nexthop_order"]["web"]["u1"] == ["r1", "r2"]

    sent = {r: _tx_packets(lab_tag, "u1", f"eth-{r}") - before[r] for r in before}
    total = sum(sent.values())
    print(f"\nhybrid: u1 sent {sent} packets towards the edges; shares {result['shares']}")
    assert total > CONNECTIONS  # every TLS connection is several packets each way
    for r, packets in sent.items():
        assert 0.3 < packets / total < 0.7, f"u1 sent {packets} of {total} packets to {r}"

    down = _cli("lab", "down", name)
    assert down.returncode == 0, down.stdout + down.stderr
