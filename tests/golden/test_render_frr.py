"""Golden files for render_frr: one router's frr.conf per plan (UPDATE_GOLDEN=1 regenerates).

Hand-written plans are named <case>.conf; plans derived from topologies/<t>.yaml by
router_plans() are named <t>.<router>.conf.

When vtysh is installed, FRR itself also checks every golden file (`vtysh -C`, a dry run that
needs no running daemon).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.frr import BfdProfile, Neighbor, RouterPlan, render_frr
from anycast_ctl.render.plan import router_plans

GOLDEN = Path(__file__).parent / "frr"
TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def _lb(name: str, address: str, asn: int, vips: tuple[str, ...]) -> Neighbor:
    return Neighbor(
        name=name,
        address=address,
        remote_as=asn,
        description=f"{name} (LB)",
        password=f"md5-{name}",
        accept=vips,
        max_prefix=len(vips) + 2,
        is_lb=True,
        ttl_security_hops=1,
    )


PLANS = {
    # The default shape: a router with two LB nodes (v4 and v6 sessions) and a peer router.
    "edge-two-lbs": RouterPlan(
        name="r1",
        asn=65000,
        router_id="10.255.0.1",
        maximum_paths=8,
        networks=("10.10.0.0/24", "2001:db8:10::/64"),
        neighbors=(
            _lb("lb1", "10.1.1.2", 65101, ("192.0.2.10/32", "192.0.2.11/32")),
            _lb("lb2", "10.1.2.2", 65102, ("192.0.2.10/32",)),
            _lb("lb1v6", "2001:db8:1:1::2", 65101, ("2001:db8:f::10/128",)),
            Neighbor(
                name="r2",
                address="10.0.12.2",
                remote_as=65001,
                description="core r2",
                password="md5-core",
                accept="any",
                max_prefix=1000,
            ),
        ),
    ),
    # An LB peer allowed no VIP of its session's family: everything it sends is denied.
    "lb-without-vips": RouterPlan(
        name="r9",
        asn=4200000000,
        router_id="10.255.0.9",
        keepalive=3,
        hold=9,
        connect_retry=5,
        neighbors=(_lb("lb9", "10.9.9.2", 65109, ()),),
    ),
}


# The same router with BFD on its LB sessions (IPv4 and IPv6), 50 ms x 4.
PLANS["edge-two-lbs-bfd"] = PLANS["edge-two-lbs"].model_copy(
    update={
        "bfd": BfdProfile(interval_ms=50, multiplier=4),
        "neighbors": tuple(
            n.model_copy(update={"bfd": n.is_lb}) for n in PLANS["edge-two-lbs"].neighbors
        ),
    }
)


for topo_file in sorted(TOPOLOGIES.glob("*.yaml")):
    for router, plan in router_plans(load_topology(topo_file)).items():
        PLANS[f"{topo_file.stem}.{router}"] = plan


@pytest.mark.parametrize("case", sorted(PLANS))
def test_render_frr_matches_golden_file(case: str) -> None:
    rendered = render_frr(PLANS[case])
    path = GOLDEN / f"{case}.conf"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(rendered)
    if not path.exists():
        pytest.fail(f"{path} is missing; UPDATE_GOLDEN=1 creates it")
    assert rendered == path.read_text(), f"{path} differs; UPDATE_GOLDEN=1 to accept on purpose"


def test_every_golden_file_has_a_plan() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.conf")) == sorted(PLANS)


@pytest.mark.skipif(shutil.which("vtysh") is None, reason="vtysh (FRR) not installed")
@pytest.mark.parametrize("case", sorted(PLANS))
def test_frr_accepts_golden_file(case: str) -> None:
    done = subprocess.run(
        ["vtysh", "-C", "-f", str(GOLDEN / f"{case}.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_neighbor_with_bfd_needs_the_routers_profile() -> None:
    with pytest.raises(ValueError, match="bfd profile"):
        RouterPlan.model_validate({**PLANS["edge-two-lbs-bfd"].model_dump(), "bfd": None})
