"""A topology run as a lab: `Lab.up` builds and starts it, `Lab.attach` finds a running one.

    lab = Lab.up("topologies/default.yaml")          # converged (BGP + FIB) or LabUpError
    lab.fib_nexthops("r1", "web")                     # ['lb2', 'lb1', 'lb3'] in kernel order
    lab.traffic(300).agreement()                      # (300, 300)
    lab.down()

Everything `up` creates carries the tag "acx-<name>": namespaces `<tag>-<node>`, the daemons'
ANYCAST_CTL_LAB environment, files under /run/anycast-ctl/lab/<tag>/. When `up` fails at any
step it removes all of it (cleanup by tag) before it raises.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import yaml

from anycast_ctl.agent import control
from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab import build, daemons, netns, nodes, observe, pki, state
from anycast_ctl.lab.cleanup import (
    CleanupReport,
    Leftovers,
    cleanup,
    lab_pids,
    leftovers,
    tag_namespaces,
)
from anycast_ctl.lab.daemons import CommandResult, Daemon
from anycast_ctl.lab.diagnose import descendants, readable_tail
from anycast_ctl.lab.expect import (
    RouterView,
    address_owners,
    expected_nexthops,
    router_problems,
    session_peers,
)
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.state import LabError
from anycast_ctl.lab.traffic import Flow, TrafficResult, kernel_orders, predict, run_traffic
from anycast_ctl.render.frr import render_frr
from anycast_ctl.render.haproxy import render_haproxy
from anycast_ctl.render.lb_layout import LbPaths, lb_paths
from anycast_ctl.render.node import node_configs
from anycast_ctl.render.plan import router_plans

TAG_PREFIX = "acx-"
LAB_FILE = "lab.json"
TOPOLOGY_FILE = "topology.yaml"


class LabUpError(LabError):
    """`lab up` failed; everything it had created is already removed."""


def tag_for(name: str) -> str:
    return state.check_name(TAG_PREFIX + state.check_name(name, "name"), "tag")


def running_labs() -> list[str]:
    """Tags of labs started by `Lab.up` whose state is still there."""
    return [t for t in state.all_tags() if (state.state_dir(t) / LAB_FILE).exists()]


def _topology_text(topology: Topology | str | Path) -> tuple[Topology, str]:
    if isinstance(topology, Topology):
        data = topology.model_dump(mode="json", exclude_unset=True)
        return topology, yaml.safe_dump(data, sort_keys=False)
    return load_topology(topology), Path(topology).read_text()


class Lab:
    def __init__(
        self,
        tag: str,
        name: str,
        topology: Topology,
        profile: str = "recommended",
        api_command: nodes.ApiCommand | None = None,
    ):
        self.tag, self.name, self.topology, self.profile = tag, name, topology, profile
        self.api_command = api_command
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
        api_command: nodes.ApiCommand | None = None,
        log: Callable[[str], None] | None = None,
    ) -> Lab:
        topo, text = _topology_text(topology)
        name = name or (tag.removeprefix(TAG_PREFIX) if tag else topo.name)
        lab = cls(tag or tag_for(name), name, topo, profile, api_command)
        lab._prerender()  # every UserError in the topology surfaces before anything exists
        lab._refuse_if_running()
        say = log or (lambda _msg: None)
        started = time.monotonic()
        try:
            lab._start(text, say)
            say("waiting for BGP sessions and FIBs")
            lab.wait_converged(timeout, require_alive=True)
        except BaseException as exc:
            report = cleanup(lab.tag)
            removed = f" (removed {len(report.namespaces)} namespaces, {len(report.terminated) + len(report.killed)} processes)"
            if isinstance(exc, (LabError, TimeoutError, OSError, UserError)):
                raise LabUpError(f"lab {name} did not come up: {exc}{removed}") from exc
            raise
        lab.bringup_seconds = time.monotonic() - started
        lab._write_meta({"up_seconds": round(lab.bringup_seconds, 3)})
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
        return cls(tag, meta["name"], topo, meta.get("profile", "recommended"))

    def down(self) -> CleanupReport:
        return cleanup(self.tag)

    def leftovers(self) -> Leftovers:
        return leftovers(self.tag)

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
        return nodes.start_haproxy(self.tag, lb, self.namespace(lb))

    def start_exabgp(self, lb: str, api_command: nodes.ApiCommand | None = None) -> Daemon:
        nodes.write_exabgp_configs(
            self.tag, self.topology, lb, self.profile, api_command or self.api_command
        )
        return nodes.start_exabgp(self.tag, lb, self.namespace(lb))

    def exec(
        self, node: str, argv: list[str], *, timeout: float | None = 30.0, capture: bool = True
    ) -> CommandResult:
        return daemons.run(
            self.tag, argv, netns=self.namespace(node), timeout=timeout, capture=capture
        )

    def agent_request(self, lb: str, payload: dict, timeout: float = 5.0) -> dict:
        return control.request(self.lb_paths(lb).control_socket, payload, timeout=timeout)

    # ------------------------------------------------------------ routers
    @cached_property
    def _owners(self) -> dict[str, str]:
        return address_owners(self.plan)

    def fib_gateways(self, router: str, vip: str) -> list[netns.NextHop]:
        return netns.fib_routes(self.namespace(router), self.topology.vip(vip).address)

    def fib_nexthops(self, router: str, vip: str) -> list[str]:
        names, _unknown = observe.fib_nexthops(
            self.namespace(router), self.topology.vip(vip).address, self._owners
        )
        return names

    def expected_nexthops(self, router: str, vip: str) -> set[str]:
        return expected_nexthops(self.topology, router, vip)

    def bgp_sessions(self, router: str) -> dict[str, str]:
        peers = session_peers(self.topology)[router]
        return observe.bgp_states(self.tag, router, self.namespace(router), peers)

    def router_view(self, router: str) -> RouterView:
        peers = session_peers(self.topology)[router]
        return observe.router_view(
            self.tag, self.topology, router, self.namespace(router), self._owners, peers
        )

    def converged(self, down_lbs: frozenset[str] = frozenset()) -> list[str]:
        """What keeps the lab from its converged state ([] when converged)."""
        problems = []
        for router in self.topology.routers:
            problems += router_problems(self.topology, self.router_view(router.name), down_lbs)
        return problems

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
                f"not converged within {timeout:g}s: "
                + "; ".join(last[0])
                + self._log_tails(last[0])
            ) from None

    def traffic(self, connections: int = 300, **options) -> TrafficResult:
        return run_traffic(self, connections, **options)

    def predict(self, flows: list[Flow]) -> list[str | None]:
        """The simulator's LB per flow, each router holding its next hops as its kernel does now."""
        return predict(self.topology, flows, kernel_orders(self))

    def status(self) -> dict:
        return observe.lab_status(self)

    # ------------------------------------------------------------ internals
    def _prerender(self) -> None:
        for plan in router_plans(self.topology).values():
            render_frr(plan)
        for lb in node_configs(self.topology, run_dir=self.dir, profile=self.profile):
            render_haproxy(self.topology, lb, run_dir=self.dir, profile=self.profile)

    def _refuse_if_running(self) -> None:
        found = tag_namespaces(self.tag)
        pids = lab_pids(self.tag)
        if found or pids or (self.dir / LAB_FILE).exists():
            what = (
                ", ".join(found[:3]) + (" ..." if len(found) > 3 else "")
                if found
                else f"{len(pids)} processes"
            )
            raise LabUpError(
                f"lab {self.name!r} (tag {self.tag}) is already running ({what or 'state in ' + str(self.dir)}); "
                f"take it down first: anycast-ctl lab down {self.name}"
            )

    def _write_meta(self, extra: dict | None = None) -> None:
        path = self.dir / LAB_FILE
        meta = json.loads(path.read_text()) if path.exists() else {}
        meta.update(
            {
                "name": self.name,
                "tag": self.tag,
                "topology": self.topology.name,
                "profile": self.profile,
            },
            **(extra or {}),
        )
        path.write_text(json.dumps(meta, indent=2) + "\n")

    def _start(self, topology_text: str, say: Callable[[str], None]) -> None:
        topo, tag = self.topology, self.tag
        with state.updating(tag):
            pass  # creates the state dir (and state.json) before anything else exists
        (self.dir / TOPOLOGY_FILE).write_text(topology_text)
        self._write_meta(
            {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        )
        say(f"building {len(topo.kinds)} namespaces and {len(topo.links)} links")
        namespaces = build.build_network(tag, topo, self.plan)
        say("making the lab CA and backend certificates")
        issued = pki.write_pki(topo, self.name, self.dir / "pki", dt.datetime.now(dt.UTC))
        say(f"starting {len(topo.backends)} TLS backends")
        ports = {b.name: b.port for b in topo.backends}
        for backend in topo.backends:
            cert, key = issued.certs[backend.name]
            listen = f"{self.plan.nodes[backend.name].loopback_v4.ip}:{ports[backend.name]}"
            nodes.start_backend(tag, backend.name, namespaces[backend.name], listen, cert, key)
        say(f"starting FRR on {len(topo.routers)} routers")
        nodes.start_routers(tag, topo, namespaces)
        say(f"starting HAProxy, ExaBGP and the agent on {len(topo.lbs)} LB nodes")
        for lb in node_configs(topo, run_dir=self.dir, profile=self.profile):
            nodes.write_lb_configs(tag, topo, lb, self.profile)
            nodes.start_haproxy(tag, lb, namespaces[lb])
            nodes.write_exabgp_configs(tag, topo, lb, self.profile, self.api_command)
            nodes.start_exabgp(tag, lb, namespaces[lb])

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
                        out.append(
                            f"\n--- {d.log_path} (last {lines} lines)\n{readable_tail(d.log_path, lines)}"
                        )
        return "".join(out)


class _DaemonDied(Exception):
    """Not a LabError: wait_for must not treat a dead daemon as "not yet"."""
