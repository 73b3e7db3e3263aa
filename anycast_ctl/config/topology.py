"""The topology: one file in `topologies/` is the single source of truth for the renderers, the
simulator and the lab.

`Topology` is the model of `topology_model.py` with what is built on it: the cross-field checks
run when a file is loaded (`topology_checks.py`) and the deterministic address plan
(`address_plan.py`). Both depend only on the model, so the imports form no cycle.
"""

from __future__ import annotations

from pathlib import Path

from anycast_ctl.config.address_plan import AddressPlan, plan_addresses
from anycast_ctl.config.loading import load_model
from anycast_ctl.config.topology_checks import check_topology
from anycast_ctl.config.topology_model import (
    Addressing,
    Algorithm,
    Backend,
    BgpPolicy,
    Client,
    Hashing,
    Link,
    LoadBalancer,
    NodeKind,
    Router,
    TopologyModel,
    Vip,
)

__all__ = [
    "Addressing",
    "Algorithm",
    "Backend",
    "BgpPolicy",
    "Client",
    "Hashing",
    "Link",
    "LoadBalancer",
    "NodeKind",
    "Router",
    "Topology",
    "Vip",
    "load_topology",
]


class Topology(TopologyModel):
    def cross_check(self) -> list[tuple[str, str]]:
        return check_topology(self)

    def address_plan(self) -> AddressPlan:
        """Interfaces, link addresses, loopbacks and BGP sessions; stable across runs."""
        return plan_addresses(self)


def load_topology(path: str | Path) -> Topology:
    """Load and check a topology file; bad input raises UserError with every problem's path."""
    topo = load_model(Topology, path)
    topo._source = str(path)
    return topo
