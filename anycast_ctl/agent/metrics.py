"""Prometheus metrics for the agent: off by default, bound to localhost when on.

prometheus-client gives correct exposition format and a tiny threaded HTTP server; writing
our own would only re-implement both. A private registry keeps tests and reloads independent
of the library's global default registry.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from anycast_ctl.agent.chance_metrics import ChanceCollector
from anycast_ctl.agent.fsm import VipState
from anycast_ctl.agent.health import CheckResult
from anycast_ctl.agent.status import DampingView
from anycast_ctl.chance.metrics_view import ChanceView
from anycast_ctl.chance.nft_counters import ChanceCounters

# Fast checks: most answer in well under a millisecond on loopback; timeouts sit near 0.1-1 s.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class AgentMetrics:
    def __init__(self, node: str, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.node = node
        self.vip_state = Gauge(
            "anycast_vip_state",
            "1 for the VIP's current state, 0 for the others",
            ["vip", "state"],
            registry=self.registry,
        )
        self.vip_announced = Gauge(
            "anycast_vip_announced",
            "1 while the VIP is announced to ExaBGP",
            ["vip"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "anycast_vip_transitions",
            "State changes of a VIP",
            ["vip", "from_state", "to_state"],
            registry=self.registry,
        )
        self.check_results = Counter(
            "anycast_check_results",
            "Health check results",
            ["check", "health"],
            registry=self.registry,
        )
        self.check_latency = Histogram(
            "anycast_check_latency_seconds",
            "Time a health check took",
            ["check"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.exabgp_alive = Gauge(
            "anycast_exabgp_alive", "1 while ExaBGP's pipe is open", registry=self.registry
        )
        self.drained = Gauge(
            "anycast_vip_drained", "1 while the VIP is drained", ["vip"], registry=self.registry
        )
        # Certificates (TLS checks): days left, and the thresholds this node applies to them,
        # so an alert can compare the two without knowing each node's staggered threshold.
        self.certificate_days_left = Gauge(
            "anycast_certificate_days_left",
            "Days until the certificate the check was last shown expires (negative: expired)",
            ["check"],
            registry=self.registry,
        )
        self.certificate_warn_days = Gauge(
            "anycast_certificate_warn_days",
            "Days left below which the agent warns (certificates.warn_days)",
            ["check"],
            registry=self.registry,
        )
        self.certificate_withdraw_days = Gauge(
            "anycast_certificate_withdraw_days",
            "Days left below which this node withdraws (its staggered threshold)",
            ["check"],
            registry=self.registry,
        )
        self.suppressed = Gauge(
            "anycast_vip_suppressed",
            "1 while flap damping holds the VIP withdrawn",
            ["vip"],
            registry=self.registry,
        )
        self.penalty = Gauge(
            "anycast_vip_flap_penalty",
            "The VIP's flap-damping penalty at its last update",
            ["vip"],
            registry=self.registry,
        )
        self.reuse_time = Gauge(
            "anycast_vip_reuse_timestamp_seconds",
            "While suppressed: when the VIP may be announced again (Unix time); 0 otherwise",
            ["vip"],
            registry=self.registry,
        )

    def watch_chance(
        self, view: Callable[[], ChanceView], read: Callable[[], ChanceCounters]
    ) -> None:
        """The second chance's metrics (agent/chance_metrics.py), read at each scrape."""
        self.registry.register(ChanceCollector(view, read))

    def observe_check(self, result: CheckResult) -> None:
        self.check_results.labels(result.check, result.health.value).inc()
        self.check_latency.labels(result.check).observe(result.latency)
        for key, gauge in (
            ("days_left", self.certificate_days_left),
            ("warn_days", self.certificate_warn_days),
            ("withdraw_days", self.certificate_withdraw_days),
        ):
            value = result.extra.get(key)
            if isinstance(value, int | float):
                gauge.labels(result.check).set(value)

    def set_vip(
        self,
        vip: str,
        state: VipState,
        announced: bool,
        drained: bool,
        damping: DampingView | None = None,
    ) -> None:
        for candidate in VipState:
            self.vip_state.labels(vip, candidate.value).set(1 if candidate is state else 0)
        self.vip_announced.labels(vip).set(1 if announced else 0)
        self.drained.labels(vip).set(1 if drained else 0)
        self.suppressed.labels(vip).set(1 if damping and damping["suppressed"] else 0)
        self.penalty.labels(vip).set(damping["penalty"] if damping else 0)
        self.reuse_time.labels(vip).set((damping["reuse_at"] if damping else None) or 0)

    def transition(self, vip: str, old: VipState, new: VipState) -> None:
        self.transitions.labels(vip, old.value, new.value).inc()

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
