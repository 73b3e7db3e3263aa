"""Start an LB node's daemons: HAProxy, and ExaBGP with its API process (our agent, or another
program the rendering was given). Their configs are already in the node's directory
(lab/nodes/files.py); ExaBGP's readiness is its BGP sessions, which the lab's convergence
wait checks.
"""

from __future__ import annotations

from anycast_ctl.lab import state
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.net.daemons import Daemon
from anycast_ctl.lab.nodes.common import venv_script, wait_alive
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


def start_exabgp(tag: str, lb: str, netns: str) -> Daemon:
    """ExaBGP as root in the LB's namespace, with the exabgp.conf and exabgp.env written there."""
    directory = state.node_dir(tag, lb)
    conf, env = directory / "exabgp.conf", directory / "exabgp.env"
    return daemons.spawn(
        tag,
        lb,
        [venv_script("exabgp"), "--env-file", str(env), "server", str(conf)],
        netns=netns,
        log_path=directory / "exabgp.log",
        name="exabgp",
        env={"PYTHONUNBUFFERED": "1"},
    )
