"""The one handle the lab's layers receive: what observation and experiments may ask of a
running lab. `topology_up.Lab` implements it; tests may pass any object that does.

Only names and types live here (no I/O), so every layer can import it without importing the
layers above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.net.daemons import Daemon
from anycast_ctl.lab.observe.expect import RouterView
from anycast_ctl.render.node_files import ApiFor


class LabHandle(Protocol):
    @property
    def tag(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def topology(self) -> Topology: ...
    @property
    def plan(self) -> AddressPlan: ...
    @property
    def dir(self) -> Path:
        """The lab's state dir (/run/anycast-ctl/lab/<tag>/)."""
        ...

    @property
    def ca_file(self) -> Path: ...
    @property
    def namespaces(self) -> dict[str, str]:
        """node -> its namespace."""
        ...

    def namespace(self, node: str) -> str: ...
    def node_config_path(self, lb: str) -> Path:
        """The agent's node.yaml of `lb` (its directory holds the node's other files too)."""
        ...

    # processes
    def daemons(self) -> dict[str, dict[str, Daemon]]: ...
    def daemon(self, node: str, name: str) -> Daemon: ...
    def start_haproxy(self, lb: str) -> Daemon: ...
    def start_bfdd(self, lb: str) -> Daemon | None:
        """bfdd on `lb` with its rendered bfdd.conf (None: BFD is off, there is none)."""
        ...

    def start_exabgp(self, lb: str, api: ApiFor | None = None) -> Daemon:
        """Render `lb`'s files with `api` as ExaBGP's API process (None: the lab's), write them
        and start ExaBGP."""
        ...

    def agent_request(self, lb: str, payload: dict[str, Any], timeout: float = 5.0) -> Any: ...

    # routers
    def fib_nexthops(self, router: str, vip: str) -> list[str]: ...
    def router_view(self, router: str) -> RouterView: ...
    def wait_converged(
        self,
        timeout: float = 30.0,
        down_lbs: frozenset[str] = frozenset(),
        require_alive: bool = False,
    ) -> None: ...
