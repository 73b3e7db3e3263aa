"""A topology run as a lab: `Lab.up` builds and starts it, `Lab.attach` finds a running one.

    lab = Lab.up("topologies/default.yaml")          # converged (BGP + FIB) or LabUpError
    lab.fib_nexthops("r1", "web")                     # ['lb2', 'lb1', 'lb3'] in kernel order
    lab.traffic(300).agreement()                      # (300, 300)
    lab.down()

`Lab` is the lab's one handle (it implements lab/handle.py's `LabHandle`, which is what the
observation and experiment layers receive). Bring-up is lab/bringup.py: the topology is
rendered once into a file map, written, and then the network and daemons are started. When
`up` fails at any step it removes everything the tag owns (cleanup by tag) before it raises.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any

from anycast_ctl.agent import control
from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.node import ExabgpDialect
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab import bringup, state
from anycast_ctl.lab.bringup import LAB_FILE, TAG_PREFIX, TOPOLOGY_FILE, LabUpError, Say
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.traffic import TrafficResult, run_traffic
from anycast_ctl.lab.net import daemons, netns
from anycast_ctl.lab.net.cleanup import CleanupReport, Leftovers, cleanup, leftovers
from anycast_ctl.lab.net.daemons import CommandResult, Daemon
from anycast_ctl.lab.net.diagnose import descendants, readable_tail
from anycast_ctl.lab.net.privilege import Identity, PrivilegeWarning
from anycast_ctl.lab.nodes import lb as lb_node
from anycast_ctl.lab.nodes.common import lab_agent_api, lab_identity
from anycast_ctl.lab.nodes.files import write_files
from anycast_ctl.lab.observe import routers, status
from anycast_ctl.lab.observe.expect import (
    RouterView,
    address_owners,
    expected_nexthops,
    router_problems,
    session_peers,
    summary,
)
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.render.lb_layout import LbPaths, lb_paths
from anycast_ctl.render.node_config import EXABGP_DIALECT
from anycast_ctl.render.node_files import ApiFor, NodeFiles, node_files

__all__ = ["Lab", "LabUpError", "running_labs", "tag_for"]

tag_for = bringup.tag_for
running_labs = bringup.running_labs


class Lab:
    def __init__(
        self,
        tag: str,
        name: str,
        topology: Topology,
        profile: str = "recommended",
        api: ApiFor | None = None,
        exabgp: ExabgpDialect = EXABGP_DIALECT,
    ):
        self.tag, self.name, self.topology, self.profile = tag, name, topology, profile
        self.api = api or lab_agent_api()  # ExaBGP's API process on every LB node
        self.exabgp = exabgp  # the ExaBGP version every LB node runs (the agent's dialect)
        self.bringup_seconds: float | None = None

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def up(
        cls,
        topology: Topology | str | Path,
        name: str | None = None,
        *,
        tag: str | None = None,
        profile: str = "recommended",
        timeout: float = 60.0,
        api: ApiFor | None = None,
        log: Say | None = None,
        cert_days: float | None = None,
        exabgp: ExabgpDialect = EXABGP_DIALECT,
    ) -> Lab:
        """Build and start `topology`; `cert_days` shortens the lab certificates' validity
        (default 2 days) to cross the topology's `certificates` thresholds on purpose;
        `exabgp`: "5.0" (this venv's) or "4.2" (`make venv-exabgp42`) on every LB node."""
        validity = bringup.cert_validity(cert_days)
        topo, text = bringup.topology_text(topology)
        name = name or (tag.removeprefix(TAG_PREFIX) if tag else topo.name)
        lab = cls(tag or tag_for(name), name, topo, profile, api, exabgp)
        rendered = lab.render()  # every UserError in the topology surfaces before anything exists
        bringup.refuse_if_running(lab.tag, lab.name)
        say = log or (lambda _msg: None)
        if lab.identity.fallback:
            say(f"warning: {lab.identity.fallback}")
            if log is None:
                warnings.warn(lab.identity.fallback, PrivilegeWarning, stacklevel=2)
        started = time.monotonic()
        try:
            bringup.start(
                lab.tag,
                lab.name,
                topo,
                lab.plan,
                rendered,
                lab._meta(),
                text,
                say,
                validity,
                exabgp=exabgp,
                identity=lab.identity,
            )
            say("waiting for BGP sessions and FIBs")
            lab.wait_converged(timeout, require_alive=True)
        except BaseException as exc:
            report = cleanup(lab.tag)
            procs = len(report.terminated) + len(report.killed)
            removed = f" (removed {len(report.namespaces)} namespaces, {procs} processes)"
            if isinstance(exc, (LabError, TimeoutError, OSError, UserError)):
                raise LabUpError(f"lab {name} did not come up: {exc}{removed}") from exc
            raise
        lab.bringup_seconds = time.monotonic() - started
        bringup.write_meta(lab.tag, {"up_seconds": round(lab.bringup_seconds, 3)})
        return lab

    @classmethod
    def attach(cls, name: str | None = None, *, tag: str | None = None) -> Lab:
        """The running lab `name` (or the only one running when no name is given)."""
        if tag is None and name is None:
            labs = running_labs()
            if len(labs) != 1:
                what = (
                    f"labs running: {', '.join(t.removeprefix(TAG_PREFIX) for t in labs)}"
                    if labs
                    else "no lab is running"
                )
                raise UserError.single("<lab>", "name", f"give the lab's name ({what})")
            tag = labs[0]
        tag = tag or tag_for(name or "")
        meta_path = state.state_dir(tag) / LAB_FILE
        if not meta_path.exists():
            raise UserError.single(
                "<lab>", "name", f"no lab {tag.removeprefix(TAG_PREFIX)!r} is running"
            )
        meta = json.loads(meta_path.read_text())
        topo = load_topology(state.state_dir(tag) / TOPOLOGY_FILE)
        return cls(
            tag,
            meta["name"],
            topo,
            meta.get("profile", "recommended"),
            exabgp=meta.get("exabgp", EXABGP_DIALECT),
        )

    def down(self) -> CleanupReport:
        return cleanup(self.tag)

    def leftovers(self) -> Leftovers:
        return leftovers(self.tag)

    def render(self, api: ApiFor | None = None) -> NodeFiles:
        """Every node's files as this lab writes them (pure), with `api` (default: the lab's)
        as ExaBGP's API process."""
        api = api or self.api
        run_as = self.identity.run_as
        return bringup.render(self.topology, self.tag, self.profile, api, self.exabgp, run_as)

    @cached_property
    def identity(self) -> Identity:
        """Who ExaBGP and the agent run as on every LB node (lab/net/privilege.py)."""
        return lab_identity(self.exabgp)

    # ------------------------------------------------------------ names and paths
    @cached_property
    def plan(self) -> AddressPlan:
        return self.topology.address_plan()

    @property
    def dir(self) -> Path:
        return state.state_dir(self.tag)

    def namespace(self, node: str) -> str:
        self.topology.kind(node)  # KeyError-free check that the node exists
        return state.namespace_name(self.tag, node)

    @property
    def namespaces(self) -> dict[str, str]:
        return {node: state.namespace_name(self.tag, node) for node in self.topology.kinds}

    @property
    def ca_file(self) -> Path:
        return self.dir / "pki" / "ca.pem"

    def lb_paths(self, lb: str) -> LbPaths:
        return lb_paths(self.dir, lb)

    def node_config_path(self, lb: str) -> Path:
        return state.node_dir(self.tag, lb) / "node.yaml"

    # ------------------------------------------------------------ processes
    def daemons(self) -> dict[str, dict[str, Daemon]]:
        """node -> daemon name -> the newest recorded process of that name."""
        out: dict[str, dict[str, Daemon]] = {}
        st = state.load(self.tag)
        for rec in st.daemons if st else []:
            out.setdefault(rec.node, {})[rec.name] = Daemon(
                tag=self.tag,
                node=rec.node,
                name=rec.name,
                pid=rec.pid,
                start_time=rec.start_time,
                argv=tuple(rec.argv),
                netns=rec.netns,
                log_path=Path(rec.log) if rec.log else None,
                pidfile=Path(rec.pidfile) if rec.pidfile else None,
            )
        return out

    def daemon(self, node: str, name: str) -> Daemon:
        try:
            return self.daemons()[node][name]
        except KeyError:
            raise LabError(f"lab {self.name}: no {name} recorded on {node}") from None

    def agent_pid(self, lb: str) -> int | None:
        """The agent runs as ExaBGP's API process: find it among ExaBGP's descendants."""
        exabgp = self.daemon(lb, "exabgp")
        if not exabgp.running():
            return None
        for pid in descendants(exabgp.pid):
            line = daemons.cmdline(pid)
            if " agent run " in f" {line} ":
                return pid
        return None

    def start_haproxy(self, lb: str) -> Daemon:
        return lb_node.start_haproxy(self.tag, lb, self.namespace(lb))

    def start_bfdd(self, lb: str) -> Daemon | None:
        return lb_node.start_bfdd(self.tag, lb, self.namespace(lb))

    def start_exabgp(self, lb: str, api: ApiFor | None = None) -> Daemon:
        rendered = node_files(
            self.topology,
            lb,
            run_dir=self.dir,
            conf_dir=state.node_dir(self.tag, lb),
            api=api or self.api,
            profile=self.profile,
            plan=self.plan,
            exabgp_dialect=self.exabgp,
            run_as=self.identity.run_as,
        )
        write_files(
            self.dir, rendered.files, lb_nodes=frozenset({lb}), service_gid=self.identity.gid
        )
        return lb_node.start_exabgp(self.tag, lb, self.namespace(lb), self.exabgp, self.identity)

    def exec(
        self, node: str, argv: list[str], *, timeout: float | None = 30.0, capture: bool = True
    ) -> CommandResult:
        return daemons.run(
            self.tag, argv, netns=self.namespace(node), timeout=timeout, capture=capture
        )

    def agent_request(self, lb: str, payload: dict[str, Any], timeout: float = 5.0) -> Any:
        return control.request(self.lb_paths(lb).control_socket, payload, timeout=timeout)

    # ------------------------------------------------------------ routers
    @cached_property
    def _owners(self) -> dict[str, str]:
        return address_owners(self.plan)

    def fib_gateways(self, router: str, vip: str) -> list[netns.NextHop]:
        return netns.fib_routes(self.namespace(router), self.topology.vip(vip).address)

    def fib_nexthops(self, router: str, vip: str) -> list[str]:
        names, _unknown = routers.fib_nexthops(
            self.namespace(router), self.topology.vip(vip).address, self._owners
        )
        return names

    def expected_nexthops(self, router: str, vip: str) -> set[str]:
        return expected_nexthops(self.topology, router, vip)

    def bgp_sessions(self, router: str) -> dict[str, str]:
        peers = session_peers(self.topology)[router]
        return routers.bgp_states(self.tag, router, self.namespace(router), peers)

    def router_view(self, router: str) -> RouterView:
        peers = session_peers(self.topology)[router]
        return routers.router_view(
            self.tag, self.topology, router, self.namespace(router), self._owners, peers
        )

    def converged(self, down_lbs: frozenset[str] = frozenset()) -> list[str]:
        """What keeps the lab from its converged state ([] when converged)."""
        problems = []
        bfd_lbs, stopped = self._bfdd_by_state()
        for router in self.topology.routers:
            view = self.router_view(router.name)
            problems += router_problems(self.topology, view, down_lbs, bfd_lbs, stopped)
        return problems

    def _bfdd_by_state(self) -> tuple[frozenset[str], frozenset[str]]:
        """(LB nodes whose recorded bfdd runs: the routers' BFD sessions to them must be up;
        those whose recorded bfdd is stopped: the routers must have noticed)."""
        running: set[str] = set()
        stopped: set[str] = set()
        for node, ds in self.daemons().items():
            if "bfdd" in ds and self.topology.kind(node) == "lb":
                (running if ds["bfdd"].running() else stopped).add(node)
        return frozenset(running), frozenset(stopped)

    def wait_converged(
        self,
        timeout: float = 30.0,
        down_lbs: frozenset[str] = frozenset(),
        require_alive: bool = False,
    ) -> None:
        """Poll (bounded) until `converged(down_lbs)` is empty. With `require_alive` (as `up`
        uses it), a recorded daemon that has died ends the wait at once with its log tail."""
        last: list[list[str]] = [[]]

        def done() -> bool:
            if require_alive:
                self._check_daemons_alive()
            last[0] = self.converged(down_lbs)
            return not last[0]

        try:
            wait_for(done, timeout, interval=0.1, what="lab convergence", ignore=(LabError,))
        except _DaemonDied as exc:
            raise LabError(str(exc)) from None
        except TimeoutError:
            raise TimeoutError(
                f"not converged within {timeout:g}s: " + summary(last[0]) + self._log_tails(last[0])
            ) from None

    def traffic(self, connections: int = 300, **options: Any) -> TrafficResult:
        return run_traffic(self, connections, **options)

    def status(self) -> dict[str, Any]:
        return status.lab_status(self)

    # ------------------------------------------------------------ internals
    def _meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "topology": self.topology.name,
            "profile": self.profile,
            "exabgp": self.exabgp,
            # who ExaBGP and the agent run as, and why root when not the service user
            "exabgp_user": self.identity.run_as.user,
            "privilege_fallback": self.identity.fallback,
        }

    def _check_daemons_alive(self) -> None:
        dead = [
            f"{d.name} on {node}"
            for node, ds in self.daemons().items()
            for d in ds.values()
            if not d.running()
        ]
        if dead:
            raise _DaemonDied("died: " + ", ".join(dead) + self._log_tails(dead, lines=20))

    def _log_tails(self, problems: list[str], lines: int = 15) -> str:
        """Tails of the logs of the nodes that `problems` mention."""
        mentioned = set(re.findall(r"[A-Za-z0-9_.-]+", " ".join(problems)))
        out = []
        for node, ds in self.daemons().items():
            if node in mentioned:
                for d in ds.values():
                    if d.log_path:
                        tail = readable_tail(d.log_path, lines)
                        out.append(f"\n--- {d.log_path} (last {lines} lines)\n{tail}")
        return "".join(out)


class _DaemonDied(Exception):
    """Not a LabError: wait_for must not treat a dead daemon as "not yet"."""
