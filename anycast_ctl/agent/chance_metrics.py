"""The second chance's Prometheus metrics: a collector read at each scrape.

The nft counters are read once per scrape (one `nft -j list counters`, the node's other
tables' counters skipped in parsing). A failed read never fails the scrape: the counter
families are left out, `anycast_second_chance_counters_read_ok` is 0 and
`anycast_second_chance_counter_read_failures_total` counts it. Building the families from a
view and a reading is pure (`families`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from anycast_ctl.chance.apply import ChanceError
from anycast_ctl.chance.metrics_view import ChanceView, peer_up
from anycast_ctl.chance.nft_counters import ChanceCounters

PREFIX = "anycast_second_chance"


def families(view: ChanceView, read: ChanceCounters | None, read_failures: int) -> list[Metric]:
    """Every family for one scrape; `read` None: the counters could not be read."""
    forwarding = GaugeMetricFamily(
        f"{PREFIX}_forwarding",
        "1 while this node's forwarding table is loaded and it forwards (not stopping or past"
        " its drain timeout)",
        value=1 if view.forwarding else 0,
    )
    up = GaugeMetricFamily(
        f"{PREFIX}_peer_up",
        "1 while the peer is heard (live or drained) and so a forwarding target",
        labels=["peer"],
    )
    for peer, state in sorted(view.peers.items()):
        up.add_metric([peer], 1 if peer_up(state) else 0)
    generation = CounterMetricFamily(
        f"{PREFIX}_table_updates",
        "Forwarding tables applied since the agent started (each one restarts the nft counters)",
        value=view.generation,
    )
    out: list[Metric] = [forwarding, up, generation]
    if view.age is not None:
        out.append(
            GaugeMetricFamily(
                f"{PREFIX}_table_age_seconds",
                "Seconds since the forwarding table was last applied",
                value=round(view.age, 3),
            )
        )
    out.append(
        GaugeMetricFamily(
            f"{PREFIX}_counters_read_ok",
            "1 if this scrape read the nft counters, 0 if nft failed (the counters are left out)",
            value=0 if read is None else 1,
        )
    )
    out.append(
        CounterMetricFamily(
            f"{PREFIX}_counter_read_failures",
            "Scrapes whose nft counter read failed",
            value=read_failures,
        )
    )
    if read is None or not read.present:
        return out
    packets = CounterMetricFamily(
        f"{PREFIX}_forwarded_packets",
        "Packets without local state sent to a peer over the overlay (both families)",
        labels=["peer"],
    )
    octets = CounterMetricFamily(
        f"{PREFIX}_forwarded_bytes",
        "Bytes of those packets (inner IP packets, without the VXLAN encapsulation)",
        labels=["peer"],
    )
    for peer, count in sorted(read.forwarded.items()):
        packets.add_metric([peer], count.packets)
        octets.add_metric([peer], count.bytes)
    arrived = CounterMetricFamily(
        f"{PREFIX}_arrived_packets",
        "Packets to a VIP that arrived over the overlay, forwarded by a peer",
        value=read.arrived.packets,
    )
    arrived_bytes = CounterMetricFamily(
        f"{PREFIX}_arrived_bytes",
        "Bytes of those packets",
        value=read.arrived.bytes,
    )
    return [*out, packets, octets, arrived, arrived_bytes]


class ChanceCollector(Collector):
    """Reads the view and the counters at each scrape (in prometheus-client's server thread)."""

    def __init__(self, view: Callable[[], ChanceView], read: Callable[[], ChanceCounters]) -> None:
        self.view = view
        self.read = read
        self.read_failures = 0

    def collect(self) -> Iterator[Metric]:
        view = self.view()
        read: ChanceCounters | None = ChanceCounters()  # no table: nothing to ask nft
        if view.loaded:
            try:
                read = self.read()
            except ChanceError:
                read = None
                self.read_failures += 1
        yield from families(view, read, self.read_failures)
