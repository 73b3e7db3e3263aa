"""The second chance's metrics: families from a view and an nft reading (pure), and the
collector's handling of a failed read."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from anycast_ctl.agent.chance_metrics import ChanceCollector, families
from anycast_ctl.agent.metrics import AgentMetrics
from anycast_ctl.chance.apply import ChanceError
from anycast_ctl.chance.metrics_view import ChanceView
from anycast_ctl.chance.nft_counters import ChanceCounters, Count

VIEW = ChanceView(
    peers={"lb1": "live", "lb2": "drained", "lb3": "down"},
    loaded=True,
    forwarding=True,
    generation=4,
    age=12.5,
)
READ = ChanceCounters(
    present=True,
    arrived=Count(7, 700),
    forwarded={"lb1": Count(3, 180), "lb2": Count(1, 60)},
)


def samples(metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in metrics for s in m.samples}


def test_a_reading_gives_packets_and_bytes_per_peer_and_what_arrived() -> None:
    got = samples(families(VIEW, READ, 0))
    assert got[("anycast_second_chance_forwarded_packets_total", (("peer", "lb1"),))] == 3
    assert got[("anycast_second_chance_forwarded_bytes_total", (("peer", "lb2"),))] == 60
    assert got[("anycast_second_chance_arrived_packets_total", ())] == 7
    assert got[("anycast_second_chance_arrived_bytes_total", ())] == 700
    assert got[("anycast_second_chance_counters_read_ok", ())] == 1


def test_peers_up_while_a_forwarding_target_and_the_tables_freshness() -> None:
    got = samples(families(VIEW, READ, 0))
    up = {dict(k[1])["peer"]: v for k, v in got.items() if k[0].endswith("_peer_up")}
    assert up == {"lb1": 1, "lb2": 1, "lb3": 0}
    assert got[("anycast_second_chance_forwarding", ())] == 1
    assert got[("anycast_second_chance_table_updates_total", ())] == 4
    assert got[("anycast_second_chance_table_age_seconds", ())] == 12.5


def test_before_the_first_table_there_is_no_age_and_nothing_forwards() -> None:
    view = ChanceView({"lb1": "down"}, loaded=False, forwarding=False, generation=0, age=None)
    names = {name for name, _ in samples(families(view, ChanceCounters(), 0))}
    assert "anycast_second_chance_table_age_seconds" not in names
    assert not any("forwarded" in n or "arrived" in n for n in names)


def test_a_failed_read_is_its_own_metric_and_the_counters_are_left_out() -> None:
    calls = []

    def broken() -> ChanceCounters:
        calls.append(1)
        raise ChanceError("nft -j list counters: no answer within 2.0 s")

    collector = ChanceCollector(lambda: VIEW, broken)
    for _ in range(2):
        got = samples(collector.collect())
    assert got[("anycast_second_chance_counters_read_ok", ())] == 0
    assert got[("anycast_second_chance_counter_read_failures_total", ())] == 2
    assert not any("forwarded" in name for name, _ in got)
    assert got[("anycast_second_chance_peer_up", (("peer", "lb1"),))] == 1  # the rest is shown
    assert len(calls) == 2  # one nft read per scrape


def test_no_table_no_nft_run() -> None:
    def never() -> ChanceCounters:
        raise AssertionError("nft asked while no table is loaded")

    view = ChanceView({"lb1": "live"}, loaded=False, forwarding=False, generation=2, age=3.0)
    got = samples(ChanceCollector(lambda: view, never).collect())
    assert got[("anycast_second_chance_counters_read_ok", ())] == 1


def test_the_agents_registry_serves_them_in_the_exposition_format() -> None:
    m = AgentMetrics("lb2")
    m.watch_chance(lambda: VIEW, lambda: READ)
    text = generate_latest(m.registry).decode()
    parsed = {f.name for f in text_string_to_metric_families(text)}
    assert {
        "anycast_second_chance_forwarded_packets",
        "anycast_second_chance_peer_up",
        "anycast_vip_state",
    } <= parsed
    assert 'anycast_second_chance_forwarded_packets_total{peer="lb1"} 3.0' in text
