"""A plan's VIPs are checked once per VIP tuple: a peer's change of state re-plans without
parsing every address again, and a bad address or port is still refused by name."""

from __future__ import annotations

import pytest

from anycast_ctl.render.chance import vip_versions


def test_each_vip_gets_its_version_and_the_same_vips_are_not_parsed_again() -> None:
    vips = tuple((f"198.19.0.{i}", 443) for i in range(1, 200)) + (("2001:db8::1", 443),)
    vip_versions.cache_clear()
    assert vip_versions(vips) == (4,) * 199 + (6,)
    assert vip_versions(tuple(vips)) == (4,) * 199 + (6,)  # an equal tuple: a cache hit
    assert vip_versions.cache_info().hits == 1


@pytest.mark.parametrize(
    ("vips", "words"),
    [
        ((("198.19.0.1", 443), ("198.19.0.x", 443)), "VIP '198.19.0.x'"),
        ((("198.19.0.1", 0),), "port 0"),
    ],
)
def test_a_bad_address_or_port_is_refused_by_name(vips, words) -> None:
    with pytest.raises(ValueError, match=words):
        vip_versions(vips)
