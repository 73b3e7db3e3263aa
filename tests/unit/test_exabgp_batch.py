"""Batched ExaBGP commands: many VIPs with the same attributes in one `attributes ... nlri` line.

The property that matters: the batched lines say exactly what the one-line-per-VIP form says
(each VIP once, with its own attributes), in fewer lines.
"""

from __future__ import annotations

import pytest
from test_exabgp_dialect import EBGP, _exabgp_dispatch

from anycast_ctl.agent import exabgp
from anycast_ctl.agent.exabgp import (
    DIALECTS,
    announce_line,
    announce_lines,
    withdraw_line,
    withdraw_lines,
)
from anycast_ctl.config.node import Bgp, Vip


def vips(n: int, base: str = "198.51.100.", **fields) -> list[Vip]:
    return [
        Vip.model_validate({"address": f"{base}{i}", "checks": ["c"], **fields})
        for i in range(1, n + 1)
    ]


def per_route(line: str) -> set[str]:
    """A batched or plain line -> the plain `VERB route PREFIX ATTRS` lines it stands for."""
    words = line.split()
    verb, form = words[0], words[1]
    if form == "route":
        return {line}
    cut = words.index("nlri")
    attrs, prefixes = words[2:cut], words[cut + 1 :]
    return {" ".join([verb, "route", p, *attrs]) for p in prefixes}


def expand(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out += sorted(per_route(line))
    return out


MIXED = [
    *vips(5),
    *vips(3, base="198.51.103.", med=10),
    *vips(2, base="2001:db8::", med=10),
    *vips(2, base="198.51.101.", path_id=3),
    *vips(1, base="198.51.102.", communities=["65000:1"]),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("graceful", [False, True])
def test_batched_announces_say_exactly_what_one_line_per_vip_says(dialect, graceful):
    batched = announce_lines(MIXED, EBGP, dialect, graceful_shutdown=graceful)
    single = [announce_line(v, EBGP, dialect, graceful_shutdown=graceful) for v in MIXED]
    assert sorted(expand(batched)) == sorted(single)
    assert len(batched) < len(single)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_batched_withdraws_name_each_vip_once_with_its_path_id(dialect):
    batched = withdraw_lines(MIXED, EBGP, dialect)
    single = [withdraw_line(v, EBGP, dialect) for v in MIXED]
    assert sorted(expand(batched)) == sorted(single)


def test_one_line_per_family_and_attribute_set_in_first_seen_order():
    lines = announce_lines(MIXED, EBGP, "5.0")
    assert [line.split(" nlri ")[0] for line in lines] == [
        "announce attributes next-hop self",
        "announce attributes next-hop self med 10",
        "announce attributes next-hop self med 10",  # the IPv6 ones: one family per line
        "announce attributes next-hop self path-information 3",
        "announce route 198.51.102.1/32 next-hop self community [ 65000:1 ]",  # alone: plain form
    ]
    assert lines[2].endswith("nlri 2001:db8::1/128 2001:db8::2/128")


def test_a_withdraw_of_many_vips_is_one_line_per_family():
    lines = withdraw_lines(
        [*vips(5), *vips(3, base="198.51.103.", med=10), *vips(2, base="2001:db8::")], EBGP, "5.0"
    )
    assert len(lines) == 2
    assert lines[0].startswith("withdraw attributes nlri 198.51.100.1/32 ")


def test_dialect_4_2_keeps_path_ids_on_one_line_each():
    # 4.2 drops path-information from `attributes ... nlri` (it sets it on a template only).
    lines = announce_lines(vips(3, path_id=3), EBGP, "4.2")
    assert lines == [
        f"announce route 198.51.100.{i}/32 next-hop self path-information 3" for i in (1, 2, 3)
    ]
    assert withdraw_lines(vips(2, path_id=3), EBGP, "4.2") == [
        f"withdraw route 198.51.100.{i}/32 path-information 3" for i in (1, 2)
    ]


def test_a_thousand_vips_fit_in_a_few_lines_of_bounded_length(monkeypatch):
    many = [
        Vip.model_validate({"address": f"10.{i // 250}.{i % 250}.1/32", "checks": ["c"]})
        for i in range(1000)
    ]
    lines = announce_lines(many, EBGP, "5.0")
    assert len(lines) == -(-1000 // exabgp.NLRI_PER_LINE)
    assert sum(len(line.split(" nlri ")[1].split()) for line in lines) == 1000
    monkeypatch.setattr(exabgp, "NLRI_PER_LINE", 7)
    assert len(withdraw_lines(many, EBGP, "5.0")) == -(-1000 // 7)


def test_batched_lines_dispatch_to_the_attributes_commands():
    assert _exabgp_dispatch(announce_lines(vips(3), EBGP, "5.0")[0]) == "announce attributes"
    assert _exabgp_dispatch(withdraw_lines(vips(3), EBGP, "5.0")[0]) == "withdraw attributes"


def test_nothing_to_say_is_no_line():
    assert announce_lines([], EBGP, "5.0") == [] and withdraw_lines([], EBGP, "4.2") == []


def test_an_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="dialect"):
        announce_lines(vips(2), Bgp.model_validate(EBGP.model_dump()), "6.0")


@pytest.mark.parametrize(
    "line, prefixes",
    [
        ("announce route 198.51.100.1/32 next-hop self", 1),
        ("#", 1),
        ("withdraw attributes nlri 198.51.100.1/32 198.51.100.2/32", 2),
        ("announce attributes next-hop self community [ 65000:1 ] nlri 10.0.0.1/32", 1),
    ],
)
def test_prefixes_in_counts_what_a_command_asks_exabgp_to_do(line, prefixes):
    assert exabgp.prefixes_in(line) == prefixes


def test_each_batched_line_counts_its_own_prefixes():
    lines = withdraw_lines(vips(250), EBGP, "5.0")
    assert [exabgp.prefixes_in(line) for line in lines] == [
        min(exabgp.NLRI_PER_LINE, 250 - start) for start in range(0, 250, exabgp.NLRI_PER_LINE)
    ]
