"""with_vip_copies: every VIP made N VIPs on consecutive addresses, announced by the same nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab.scale import with_vip_copies

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def test_default_with_1000_copies_gives_every_node_1000_vips_of_one_service():
    base = load_topology(TOPOLOGIES / "default.yaml")
    big = with_vip_copies(base, 1000)
    assert len(big.vips) == 1000
    assert len({v.address for v in big.vips}) == 1000
    for lb in big.lbs:
        assert len(lb.vips) == 1000
        assert big.maximum_prefix_for(lb.name) == base.maximum_prefix_for(lb.name) * 1000
    original = base.vips[0]
    assert big.vips[0] == original
    for copy in big.vips[1:]:
        assert (copy.port, copy.backends, copy.tls_name) == (
            original.port,
            original.backends,
            original.tls_name,
        )
    assert big.vips[1].address == "198.19.0.1/32"
    assert big.vips[-1].address == "198.19.3.231/32"


def test_one_copy_is_the_topology_itself():
    base = load_topology(TOPOLOGIES / "default.yaml")
    assert with_vip_copies(base, 1) is base


def test_ipv6_vips_take_the_ipv6_pool():
    base = load_topology(TOPOLOGIES / "hybrid.yaml")
    big = with_vip_copies(base, 3)
    assert len(big.vips) == 3 * len(base.vips)
    for version in (4, 6):
        assert sum(v.version == version for v in big.vips) == 3 * sum(
            v.version == version for v in base.vips
        )


def test_a_pool_too_small_is_named():
    base = load_topology(TOPOLOGIES / "default.yaml")
    with pytest.raises(UserError, match="pool_v4: 198.19.0.0/30 holds 3 addresses; 9 copies"):
        with_vip_copies(base, 10, pool_v4="198.19.0.0/30")


def test_copies_out_of_range_are_refused():
    base = load_topology(TOPOLOGIES / "default.yaml")
    with pytest.raises(UserError, match="copies: 0: must lie in"):
        with_vip_copies(base, 0)
