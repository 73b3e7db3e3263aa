"""Who forwards moved connections in a failover run, and what that predicts (pure: no I/O).

A run's second chance is driven by the lab (chance_driver.py loads every node's table), by
the agent (its own tables, where the topology leaves them on), or by nobody:

    forwarder(topo, setting, implementation)   # "lab", "agent" or None
    forwarding_prediction(forwarder, scenario) # how longlived.broken_counts predicts breaks

The two drivers differ after an event that stops the acted-on node's agent: the lab's tables
stay and still forward to the node, the agent's peers stop forwarding to it.
"""

from __future__ import annotations

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.experiments.baseline import Implementation
from anycast_ctl.lab.experiments.scenario_names import ROUTER_SCENARIOS, Scenario
from anycast_ctl.sim.owners import unpredictable

# Events after which the acted-on node still serves its own connections (its HAProxy runs):
# with the lab's tables loaded, they break none. Any other LB event loses the node's own.
LAB_STILL_SERVING: frozenset[Scenario] = frozenset(
    {
        Scenario.DRAIN,
        Scenario.AGENT_KILL,
        Scenario.EXABGP_KILL,
        Scenario.AGENT_HANG,
        Scenario.EXABGP_HANG,
        Scenario.FLAKY,
        Scenario.STEADY,
    }
)

# Events after which the agent's own second chance still forwards to the acted-on node: its
# agent lives and tells its peers it serves (a drain), or nothing was withdrawn. Any other LB
# event stops its heartbeats or marks it down, so its peers forward it nothing: its own
# connections break, the others' are forwarded to their owners.
AGENT_STILL_SERVING: frozenset[Scenario] = frozenset(
    {Scenario.DRAIN, Scenario.FLAKY, Scenario.STEADY}
)


def second_chance_on(topo: Topology, setting: bool | None) -> bool:
    """Whether a run forwards: the setting, or the product's default for the topology."""
    if setting is not None:
        return setting
    return topo.second_chance.enabled and not unpredictable(topo)


def forwarder(topo: Topology, setting: bool | None, implementation: Implementation) -> str | None:
    """Who forwards moved connections in a run: the lab (setting True), nobody (False, or a
    baseline, which runs no agent), or the agent where the topology leaves it on (None)."""
    if setting is True:
        return "lab"
    if setting is None and implementation is Implementation.ANYCAST:
        return "agent" if second_chance_on(topo, None) else None
    return None


def forwarding_prediction(forwarding: str | None, scenario: Scenario) -> str | None:
    """How broken_counts predicts, given who forwards (None: nobody, "lab": the lab's tables,
    "agent": the agent's own): None (the model's prediction of which flows move; also for a
    router event), "none" (the node still serves its connections), "own" (it lost them)."""
    if forwarding is None or scenario in ROUTER_SCENARIOS:
        return None
    serving = LAB_STILL_SERVING if forwarding == "lab" else AGENT_STILL_SERVING
    return "none" if scenario in serving else "own"
