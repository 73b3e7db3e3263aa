"""The second chance's nft counters from `nft -j list counters` (pure parsing)."""

from __future__ import annotations

import json

import pytest

from anycast_ctl.chance.nft_counters import Count, CountersFormatError, parse_counters


def listing(*counters: dict[str, object]) -> str:
    meta = {"metainfo": {"version": "1.0.6", "json_schema_version": 1}}
    return json.dumps({"nftables": [meta, *({"counter": c} for c in counters)]})


def counter(name: str, packets: int, octets: int, family: str = "ip", table: str = "") -> dict:
    return {
        "family": family,
        "name": name,
        "table": table or "anycast_chance",
        "handle": 1,
        "packets": packets,
        "bytes": octets,
    }


def test_both_tables_add_up_per_peer_and_other_tables_are_ignored() -> None:
    read = parse_counters(
        listing(
            counter("forwarded_lb1", 2, 200),
            counter("forwarded_lb3", 1, 60),
            counter("arrived", 5, 500),
            counter("forwarded_lb1", 3, 300, family="ip6"),
            counter("arrived", 1, 80, family="ip6"),
            counter("arrived", 9, 9, family="inet", table="other"),
            counter("forwarded_lb1", 7, 7, family="inet", table="anycast_chance"),
        )
    )
    assert read.present
    assert read.forwarded == {"lb1": Count(5, 500), "lb3": Count(1, 60)}
    assert read.arrived == Count(6, 580)
    assert read.forwarded_total == Count(6, 560)


def test_no_table_of_ours_is_not_present_and_counts_nothing() -> None:
    read = parse_counters(listing(counter("arrived", 9, 9, table="other")))
    assert not read.present and read.forwarded == {} and read.arrived == Count()


@pytest.mark.parametrize(
    "text", ["", "[1]", "nft: oops", listing({"table": "anycast_chance", "family": "ip"})]
)
def test_an_answer_that_is_not_a_listing_is_an_error_not_zero(text: str) -> None:
    with pytest.raises(CountersFormatError):
        parse_counters(text)
