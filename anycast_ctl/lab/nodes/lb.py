"""Start an LB node's daemons: HAProxy, ExaBGP with its API process (our agent, or another
program the rendering was given) and FRR's bfdd, which answers the routers' BFD for ExaBGP's
sessions. Their configs are already in the node's directory (lab/nodes/files.py); ExaBGP's
and bfdd's readiness is their sessions, which the lab's convergence wait checks.

bfdd runs without zebra here (nothing else of FRR is on an LB node): its sessions name their
local address, not an interface, which bfdd could only learn from zebra (render/bfdd.py).
A node with IPv6 return routes also runs lab/programs/route_keeper.py, which replaces them
when a router's link loses its carrier, as a routing daemon would (IPv6 sockets keep their
cached route otherwise; the program says why).
"""

from __future__ import annotations

import json

from anycast_ctl.lab import state
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.net.daemons import Daemon
from anycast_ctl.lab.net.privilege import Identity
from anycast_ctl.lab.nodes.common import (
    exabgp_program,
    lab_identity,
    start_program,
    wait_alive,
)
from anycast_ctl.lab.nodes.frr import start_daemon
from anycast_ctl.render.bfdd import BFDD_CONF
from anycast_ctl.render.exabgp import exabgp_argv
from anycast_ctl.render.hostnet import Route
from anycast_ctl.render.lb_layout import lb_paths

HAPROXY = "haproxy"


def start_haproxy(tag: str, lb: str, netns: str, timeout: float = 10.0) -> Daemon:
    """HAProxy in the foreground (-db: one process, so its pid is HAProxy itself)."""
    directory = state.node_dir(tag, lb)
    paths = lb_paths(state.state_dir(tag), lb)
    paths.haproxy_socket.unlink(missing_ok=True)
    daemon = daemons.spawn(
        tag,
        lb,
        [HAPROXY, "-db", "-f", str(directory / "haproxy.cfg")],
        netns=netns,
        log_path=directory / "haproxy.log",
        name="haproxy",
    )
    wait_alive(daemon, paths.haproxy_socket.exists, timeout, f"HAProxy on {lb} (stats socket)")
    return daemon


def start_exabgp(
    tag: str, lb: str, netns: str, version: str = "5.0", identity: Identity | None = None
) -> Daemon:
    """ExaBGP `version` in the LB's namespace with the exabgp.conf and exabgp.env written
    there, as `identity` (default `lab_identity(version)`: user anycast-ctl with CAP_NET_ADMIN
    alone, the agent its child with the same; the files must be rendered for the same one)."""
    identity = identity or lab_identity(version)
    directory = state.node_dir(tag, lb)
    conf, env = directory / "exabgp.conf", directory / "exabgp.env"
    return daemons.spawn(
        tag,
        lb,
        [*identity.prefix, *exabgp_argv(exabgp_program(version), version, env, conf)],
        netns=netns,
        log_path=directory / "exabgp.log",
        name="exabgp",
        # Empty is unset to Python: ExaBGP and the agent write their bytecode once instead of
        # compiling every module again at every restart (the agent's start-up is measured);
        # as user anycast-ctl they cannot write it here, which `make venv` did beforehand.
        env={"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "", **identity.env},
    )


def start_bfdd(tag: str, lb: str, netns: str) -> Daemon | None:
    """bfdd in the LB's namespace with its bfdd.conf (None: the node has none, BFD is off)."""
    directory = state.node_dir(tag, lb)
    config = directory / BFDD_CONF
    if not config.exists():
        return None
    return start_daemon(tag, lb, netns, "bfdd", config, directory)


ROUTE_KEEPER = "anycast_ctl.lab.programs.route_keeper"


def start_route_keeper(
    tag: str, lb: str, netns: str, routes: tuple[Route, ...], timeout: float = 10.0
) -> Daemon | None:
    """The keeper of the node's IPv6 static routes (None: the node has none)."""
    mine = [r for r in routes if r.version == 6]
    if not mine:
        return None
    directory = state.node_dir(tag, lb)
    spec = directory / "route-keeper.json"
    spec.write_text(
        json.dumps(
            [
                {
                    "prefix": r.prefix,
                    "source": r.source,
                    "nexthops": [{"gateway": h.gateway, "device": h.device} for h in r.nexthops],
                }
                for r in mine
            ]
        )
    )
    return start_program(
        tag, lb, netns, ROUTE_KEEPER, ["--routes", str(spec)], "route-keeper", timeout
    )
