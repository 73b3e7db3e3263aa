"""Prefix-list collapse: the ranges accept exactly the VIPs' host routes, and no fewer ranges can.

Checked against a brute-force enumeration: an FRR prefix-list evaluator (first matching entry
wins, implicit deny) run over every prefix of every length inside a small address block.
"""

from __future__ import annotations

import ipaddress
import random

import pytest

from anycast_ctl.render.frr import Neighbor, RouterPlan, render_frr
from anycast_ctl.render.prefix_ranges import PrefixRange, host_ranges


def frr_accepts(entries: list[tuple[str, str]], prefix) -> bool:
    """FRR prefix-list semantics for `permit|deny NET [ge G] [le L]`: first match wins."""
    for action, text in entries:
        words = text.split()
        net = ipaddress.ip_network(words[0])
        ge = int(words[words.index("ge") + 1]) if "ge" in words else None
        le = int(words[words.index("le") + 1]) if "le" in words else None
        if ge is None and le is None:
            lengths = range(net.prefixlen, net.prefixlen + 1)
        else:
            lengths = range(ge or net.prefixlen, (le or net.max_prefixlen) + 1)
        if (
            prefix.version == net.version
            and prefix.prefixlen in lengths
            and prefix.network_address in net
            and prefix.prefixlen >= net.prefixlen
        ):
            return action == "permit"
    return False


def rendered_entries(text: str, name: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) > 5 and words[1] == "prefix-list" and words[2] == name:
            out.append((words[5], " ".join(words[6:])))
    return out


def min_blocks(members: set, block) -> int:
    """The fewest aligned blocks tiling exactly `members` inside `block` (independent recursion)."""
    inside = {m for m in members if m in block}
    if not inside:
        return 0
    if len(inside) == block.num_addresses:
        return 1
    low, high = block.subnets(prefixlen_diff=1)
    return min_blocks(inside, low) + min_blocks(inside, high)


def lb_plan(accept: tuple[str, ...]) -> RouterPlan:
    family = ipaddress.ip_network(accept[0]).version if accept else 4
    address = "10.1.1.2" if family == 4 else "fd00:1::2"
    neighbor = Neighbor(
        name="lb1",
        address=address,
        remote_as=65101,
        password="k",
        accept=accept,
        max_prefix=max(1, len(accept)),
        is_lb=True,
    )
    return RouterPlan(name="r1", asn=65000, router_id="10.0.0.1", neighbors=(neighbor,))


CASES = [
    ("192.0.2.0/27", 4),
    ("2001:db8::/123", 6),
]


@pytest.mark.parametrize("block, family", CASES)
@pytest.mark.parametrize("seed", range(40))
def test_rendered_prefix_list_accepts_exactly_the_vips_with_the_fewest_entries(block, family, seed):
    rng = random.Random(seed)
    hosts = list(ipaddress.ip_network(block))
    density = rng.choice([0.1, 0.5, 0.9, 1.0])
    vips = {h for h in hosts if rng.random() < density} or {hosts[seed % len(hosts)]}
    accept = tuple(str(ipaddress.ip_network(h)) for h in sorted(vips))
    text = render_frr(lb_plan(accept))
    name = f"PL{family}-lb1-IN"
    entries = rendered_entries(text, name)
    # every prefix of every length in and around the block: accepted iff it is a VIP host route
    universe = ipaddress.ip_network(block).supernet(prefixlen_diff=2)
    outside = [universe.supernet(new_prefix=n) for n in range(universe.prefixlen)]
    outside += list(ipaddress.ip_network(hosts[-1]).supernet(new_prefix=8).subnets(new_prefix=9))
    for prefix in outside:
        assert not frr_accepts(entries, prefix), (prefix, entries)
    for length in range(universe.prefixlen, universe.max_prefixlen + 1):
        for prefix in universe.subnets(new_prefix=length):
            expected = prefix.prefixlen == prefix.max_prefixlen and prefix.network_address in vips
            assert frr_accepts(entries, prefix) is expected, (prefix, entries)
    permits = [e for e in entries if e[0] == "permit"]
    assert len(permits) == min_blocks(vips, universe)


def test_a_full_aligned_block_is_one_range_and_a_lone_vip_stays_exact():
    assert host_ranges([f"10.0.0.{i}/32" for i in range(8, 16)] + ["10.0.0.20/32"]) == [
        PrefixRange("10.0.0.8/29", 32),
        PrefixRange("10.0.0.20/32", 32),
    ]
    assert [r.entry() for r in host_ranges(["10.0.0.8/32", "10.0.0.9/32"])] == [
        "10.0.0.8/31 ge 32 le 32"
    ]
    assert [r.entry() for r in host_ranges(["2001:db8::4/128"])] == ["2001:db8::4/128"]


def test_both_families_and_duplicates_collapse_separately():
    ranges = host_ranges(["2001:db8::1/128", "2001:db8::0/128", "10.0.0.1/32", "10.0.0.1/32"])
    assert [r.entry() for r in ranges] == ["10.0.0.1/32", "2001:db8::/127 ge 128 le 128"]


def test_a_thousand_consecutive_vips_take_a_handful_of_entries():
    base = int(ipaddress.ip_address("10.20.0.0"))
    vips = [f"{ipaddress.ip_address(base + i)}/32" for i in range(1000)]
    assert len(host_ranges(vips)) == bin(1000).count("1")  # 512+256+128+64+32+8


def test_a_route_that_is_not_a_host_route_is_refused():
    with pytest.raises(ValueError, match="not a host route"):
        host_ranges(["10.0.0.0/24"])
