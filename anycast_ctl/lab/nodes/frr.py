"""FRR (zebra + bgpd, and bfdd with BFD on) in a lab namespace, and vtysh queries against it.

The rendering gives each router its integrated frr.conf and the per-daemon zebra.conf,
bgpd.conf and bfdd.conf (render/node_files.py: no daemon then logs another's commands as
errors);
they are written before anything starts. Every daemon runs in the foreground under our
spawn() (so their pid is the one we track and their log goes to a file); `-N <namespace>` gives
each router its own /run/frr/<namespace>/ for pid files and vty sockets, and -P 0 turns the TCP
vty off. The daemons drop to user frr *before* reading -f: the config directory must be
readable by it, or they start empty and say nothing (DESIGN.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab import state
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.net.daemons import Daemon
from anycast_ctl.lab.poll import wait_for

FRR_SBIN = Path("/usr/lib/frr")
FRR_RUN_DIR = Path("/run/frr")
VTYSH = "vtysh"


# Start order: bgpd registers its BFD peers with bfdd through zebra, so zebra comes first and
# bfdd is there when bgpd asks (a router without BFD in its config runs no bfdd).
DAEMON_ORDER = ("zebra", "bfdd", "bgpd")


@dataclass(frozen=True)
class FrrRouter:
    tag: str
    node: str
    netns: str
    config_path: Path
    zebra: Daemon
    bgpd: Daemon
    bfdd: Daemon | None = None

    @property
    def daemons(self) -> list[Daemon]:
        return [d for d in (self.zebra, self.bfdd, self.bgpd) if d is not None]


def in_start_order(recorded: dict[str, Daemon]) -> list[Daemon]:
    """A router's recorded FRR daemons (name -> newest record), in DAEMON_ORDER."""
    return [recorded[name] for name in DAEMON_ORDER if name in recorded]


def start_routers(tag: str, topo: Topology, namespaces: dict[str, str]) -> dict[str, FrrRouter]:
    return {r.name: start_frr(tag, r.name, netns=namespaces[r.name]) for r in topo.routers}


def start_frr(tag: str, node: str, netns: str | None = None, timeout: float = 20.0) -> FrrRouter:
    """Start zebra, bfdd (when the router has a bfdd.conf) and bgpd in the node's namespace
    with the configs already written in its directory (frr.conf and each daemon's part:
    lab/nodes/files.py), and wait (bounded) until `vtysh -N <ns> -c 'show bgp summary json'`
    answers with that config loaded."""
    ns = netns or state.namespace_name(tag, node)
    directory = state.node_dir(tag, node)
    configs = {name: directory / f"{name}.conf" for name in ("frr", *DAEMON_ORDER)}
    try:
        config_text = configs["frr"].read_text()
    except FileNotFoundError:
        raise LabError(
            f"FRR on {node}: no {configs['frr']} (write the node's files first)"
        ) from None
    started: dict[str, Daemon] = {}
    for name in DAEMON_ORDER:
        if name == "bfdd" and not configs[name].exists():
            continue
        started[name] = start_daemon(tag, node, ns, name, configs[name], directory)
    router = FrrRouter(
        tag, node, ns, configs["frr"], started["zebra"], started["bgpd"], started.get("bfdd")
    )
    _await_ready(router, config_text, timeout)
    return router


def start_daemon(tag: str, node: str, ns: str, name: str, config: Path, logs: Path) -> Daemon:
    """One FRR daemon in the foreground in namespace `ns`, reading `config`: -N gives it
    /run/frr/<ns>/ for its pid file and vty socket, -P 0 turns its TCP vty off."""
    state.record_file(tag, FRR_RUN_DIR / ns)
    pidfile = FRR_RUN_DIR / ns / f"{name}.pid"
    argv = [str(FRR_SBIN / name), "-N", ns, "-f", str(config), "-i", str(pidfile), "-P", "0"]
    return daemons.spawn(
        tag, node, argv, netns=ns, log_path=logs / f"{name}.log", pidfile=pidfile, name=name
    )


def _await_ready(router: FrrRouter, config_text: str, timeout: float) -> None:
    asn = re.search(r"^router bgp (\d+)", config_text, re.MULTILINE)

    def ready() -> bool:
        for d in router.daemons:
            if not d.running():
                raise _Died(
                    f"{d.name} of {router.node} died; see {d.log_path}:\n"
                    + (daemons.log_tail(d.log_path) if d.log_path else "")
                )
        vtysh_json(router.tag, router.node, "show bgp summary json", netns=router.netns)
        # Daemons that could not read -f answer too, with an empty config: insist on ours.
        return asn is None or _running_asn(router) == asn.group(1)

    try:
        wait_for(ready, timeout, interval=0.1, what=f"FRR on {router.node}", ignore=(LabError,))
    except TimeoutError as exc:
        raise LabError(f"{exc}; see {router.bgpd.log_path}") from None
    except _Died as exc:
        raise LabError(str(exc)) from None


class _Died(Exception):
    """A daemon exited while we waited: no point polling further."""


def _running_asn(router: FrrRouter) -> str | None:
    text = vtysh(router.tag, router.node, "show running-config", netns=router.netns)
    found = re.search(r"^router bgp (\d+)", text, re.MULTILINE)
    return found.group(1) if found else None


def vtysh(
    tag: str, node: str, command: str, netns: str | None = None, timeout: float = 10.0
) -> str:
    """Run one vtysh command against the node's FRR; LabError when vtysh fails."""
    ns = netns or state.namespace_name(tag, node)
    result = daemons.run(tag, [VTYSH, "-N", ns, "-c", command], timeout=timeout)
    if not result.ok:
        raise LabError(f"vtysh -N {ns} -c {command!r}: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def vtysh_json(tag: str, node: str, command: str, netns: str | None = None) -> dict:
    text = vtysh(tag, node, command, netns=netns)
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise LabError(
            f"{command!r} on {node} did not return JSON: {exc}: {text[:200]!r}"
        ) from None
