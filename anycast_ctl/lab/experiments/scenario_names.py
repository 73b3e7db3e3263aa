"""The lab's failover scenarios by name, and the facts about them that need no lab (pure).

The names are a contract: `lab failover --scenarios` takes them, reports and JSON key by them.
Their acts are in scenarios.py; what a run measures of them, in failover.py.
"""

from __future__ import annotations

from enum import StrEnum


class Scenario(StrEnum):
    STEADY = "steady"  # no event: steady load only; counts withdrawals nobody deserved
    HAPROXY_KILL = "haproxy-kill"  # SIGKILL; recovery: start HAProxy again
    HAPROXY_HANG = "haproxy-hang"  # SIGSTOP; recovery: SIGCONT
    AGENT_KILL = "agent-kill"  # SIGKILL of ExaBGP's API process (agent or healthcheck)
    EXABGP_KILL = "exabgp-kill"  # SIGKILL; recovery: start ExaBGP again
    AGENT_HANG = "agent-hang"  # SIGSTOP of ExaBGP's API process only; recovery: SIGCONT
    EXABGP_HANG = "exabgp-hang"  # SIGSTOP of ExaBGP only; recovery: SIGCONT
    DRAIN = "drain"  # anycast-ctl drain (healthcheck: its --disable file); recovery: undrain
    LINK_DOWN = "link-down"  # the LB's router-facing links down; recovery: up
    FLAKY = "flaky"  # the node's own VIP check late on a fraction of connects, for a period
    # Every process of the node SIGSTOPped, its uplinks' traffic dropped, links up (freeze_acts)
    NODE_FREEZE = "node-freeze"
    ROUTER_KILL = "router-kill"  # a router's zebra and bgpd SIGKILLed, its links down at once
    ROUTER_DRAIN = "router-drain"  # withdrawn upstream; once unused, switched off (as a kill)


EVENTS: tuple[Scenario, ...] = tuple(s for s in Scenario if s is not Scenario.STEADY)
# Scenarios whose node is a router (router_acts.redundant_routers), not an LB node.
ROUTER_SCENARIOS: frozenset[Scenario] = frozenset({Scenario.ROUTER_KILL, Scenario.ROUTER_DRAIN})
# Scenarios whose node deserves no withdrawal (it stays healthy): no withdraw time to measure.
QUIET_SCENARIOS: frozenset[Scenario] = frozenset({Scenario.STEADY, Scenario.FLAKY})
# Scenarios that SIGSTOP one process of the node (hang_acts.py), judged by their own goal.
HANG_SCENARIOS: frozenset[Scenario] = frozenset({Scenario.AGENT_HANG, Scenario.EXABGP_HANG})
FLAKY_PERCENT = 5  # of the node's own check connects answered late
