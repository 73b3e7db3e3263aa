"""Start the daemons of a lab's nodes: FRR on routers, HAProxy and ExaBGP (+ the agent as its
API process) on LB nodes, TLS servers on backends. Clients run nothing.

Each start function writes the node's rendered config under the lab's state dir, spawns the
daemon through lab/daemons.py (tagged, logged to a file next to its config) and waits, bounded,
until it is ready: FRR answers vtysh with our config, HAProxy's stats socket exists, a backend
has written its ready file. ExaBGP's readiness is its BGP sessions, which the lab's convergence
wait checks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab import daemons, frr, state
from anycast_ctl.lab.daemons import Daemon
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.state import LabError
from anycast_ctl.render.frr import render_frr
from anycast_ctl.render.haproxy import render_haproxy
from anycast_ctl.render.lb_layout import LbPaths, lb_paths
from anycast_ctl.render.node import node_config, node_config_yaml
from anycast_ctl.render.plan import router_plans

HAPROXY = "haproxy"
ApiCommand = Callable[[str, Path], list[str]]  # (lb, node.yaml) -> argv of ExaBGP's API process


def venv_script(name: str) -> str:
    """A console script installed next to this interpreter (the venv's bin/)."""
    return str(Path(sys.executable).parent / name)


def agent_command(lb: str, node_yaml: Path) -> list[str]:
    return [venv_script("anycast-ctl"), "agent", "run", str(node_yaml)]


def _node_dir(tag: str, node: str) -> Path:
    directory = state.node_dir(tag, node)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _wait_alive(daemon: Daemon, ready: Callable[[], bool], timeout: float, what: str) -> None:
    def check() -> bool:
        if not daemon.running():
            raise LabError(
                f"{daemon.name} on {daemon.node} exited while starting; see {daemon.log_path}:\n"
                + daemons.log_tail(daemon.log_path or "", 20)
            )
        return ready()

    try:
        wait_for(check, timeout, interval=0.02, what=what)
    except TimeoutError as exc:
        raise LabError(
            f"{exc}; see {daemon.log_path}:\n{daemons.log_tail(daemon.log_path or '', 20)}"
        ) from None


# ---------------------------------------------------------------- routers
def start_routers(tag: str, topo: Topology, namespaces: dict[str, str]) -> dict[str, frr.FrrRouter]:
    return {
        router: frr.start_frr(tag, router, render_frr(plan), netns=namespaces[router])
        for router, plan in router_plans(topo).items()
    }


# ---------------------------------------------------------------- LB nodes
def write_lb_configs(tag: str, topo: Topology, lb: str, profile: str) -> tuple[LbPaths, Path, Path]:
    """Render the agent's node.yaml and haproxy.cfg of one LB; (paths, node.yaml, haproxy.cfg)."""
    run_dir = state.state_dir(tag)
    directory = _node_dir(tag, lb)
    config = node_config(topo, lb, run_dir=run_dir, profile=profile)
    node_yaml = directory / "node.yaml"
    node_yaml.write_text(node_config_yaml(config, topology_name=topo.name))
    haproxy_cfg = directory / "haproxy.cfg"
    haproxy_cfg.write_text(render_haproxy(topo, lb, run_dir=run_dir, profile=profile))
    return lb_paths(run_dir, lb), node_yaml, haproxy_cfg


def start_haproxy(tag: str, lb: str, netns: str, timeout: float = 10.0) -> Daemon:
    """HAProxy in the foreground (-db: one process, so its pid is HAProxy itself)."""
    directory = _node_dir(tag, lb)
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
    _wait_alive(daemon, paths.haproxy_socket.exists, timeout, f"HAProxy on {lb} (stats socket)")
    return daemon


def write_exabgp_configs(
    tag: str, topo: Topology, lb: str, profile: str, api: ApiCommand | None
) -> tuple[Path, Path]:
    """exabgp.conf + exabgp.env of one LB (render/exabgp.py). ExaBGP's API process is our agent
    unless `api` names another (e.g. the ExaBGP healthcheck baseline): its argv then replaces
    the rendered `run` line, word for word (ExaBGP splits `run` on whitespace, so no word may
    contain any)."""
    from anycast_ctl.render.exabgp import render_exabgp

    directory = _node_dir(tag, lb)
    node_yaml = directory / "node.yaml"
    config = node_config(topo, lb, run_dir=state.state_dir(tag), profile=profile)
    rendered = render_exabgp(config, node_yaml, [venv_script("anycast-ctl")])
    conf_text = rendered["exabgp.conf"]
    argv = (api or agent_command)(lb, node_yaml)
    default = agent_command(lb, node_yaml)
    if argv != default:
        bad = [w for w in argv if not w or any(c.isspace() or c in ";{}" for c in w)]
        if bad or not argv:
            raise LabError(
                f"ExaBGP API command for {lb}: words must be non-empty, without spaces, ';' or braces: {bad}"
            )
        old, new = f"run {' '.join(default)};", f"run {' '.join(argv)};"
        if conf_text.count(old) != 1:
            raise LabError(f"rendered exabgp.conf of {lb} has no single `{old}` line to replace")
        conf_text = conf_text.replace(old, new)
    conf, env = directory / "exabgp.conf", directory / "exabgp.env"
    conf.write_text(conf_text)
    env.write_text(rendered["exabgp.env"])
    return conf, env


def start_exabgp(tag: str, lb: str, netns: str) -> Daemon:
    """ExaBGP as root in the LB's namespace, with the configs `write_exabgp_configs` wrote."""
    directory = _node_dir(tag, lb)
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


# ---------------------------------------------------------------- backends
def start_backend(
    tag: str, backend: str, netns: str, listen: str, cert: Path, key: Path, timeout: float = 10.0
) -> Daemon:
    directory = _node_dir(tag, backend)
    ready = directory / "backend.ready"
    ready.unlink(missing_ok=True)
    daemon = daemons.spawn(
        tag,
        backend,
        [
            sys.executable,
            "-m",
            "anycast_ctl.lab.backend",
            "--name",
            backend,
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--listen",
            listen,
            "--ready-file",
            str(ready),
        ],
        netns=netns,
        log_path=directory / "backend.log",
        name="backend",
        env={"PYTHONUNBUFFERED": "1", "PYTHONPATH": _package_root()},
    )
    _wait_alive(daemon, ready.exists, timeout, f"backend {backend} ({listen})")
    return daemon


def _package_root() -> str:
    """So `python -m anycast_ctl...` works in a child even when we were not installed."""
    root = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root
