"""What the node starters share: where the venv's programs are, our agent as ExaBGP's API
process, who ExaBGP and the agent run as, and a bounded wait for a freshly spawned daemon that
fails at once (with its log tail) if the daemon dies meanwhile."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from anycast_ctl.lab import state
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.net.daemons import Daemon
from anycast_ctl.lab.net.privilege import Identity, import_probe, service_identity
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.render.node_files import ApiFor, agent_api


def venv_script(name: str) -> str:
    """A console script installed next to this interpreter (the venv's bin/)."""
    return str(Path(sys.executable).parent / name)


# ExaBGP 4.2 lives in a venv of its own (`make venv-exabgp42`), beside this checkout's .venv.
EXABGP42_VENV = ".venv-exabgp42"
EXABGP42_ENV = "ANYCAST_CTL_EXABGP42"  # or the path of its `exabgp` script


def exabgp_program(version: str) -> str:
    """The `exabgp` script of ExaBGP `version`: 5.0 from this venv, 4.2 from its own."""
    if version == "5.0":
        return venv_script("exabgp")
    if version != "4.2":
        raise LabError(f"no ExaBGP {version} for the lab (known: 4.2, 5.0)")
    program = os.environ.get(EXABGP42_ENV) or str(
        Path(__file__).resolve().parents[3] / EXABGP42_VENV / "bin" / "exabgp"
    )
    if not os.access(program, os.X_OK):
        raise LabError(
            f"no ExaBGP 4.2 at {program}: run `make venv-exabgp42` (or set {EXABGP42_ENV})"
        )
    return program


# What ExaBGP and the agent import when they start: the service user must be able to.
EXABGP_MODULES = ("exabgp",)
AGENT_MODULES = ("anycast_ctl.agent.runtime",)


def lab_identity(version: str) -> Identity:
    """Who the lab runs ExaBGP `version` and our agent as (lab/net/privilege.py): user
    anycast-ctl with CAP_NET_ADMIN alone when it can run both, else root with the reason."""
    return service_identity(
        [
            import_probe(exabgp_program(version), EXABGP_MODULES),
            import_probe(venv_script("anycast-ctl"), AGENT_MODULES),
        ]
    )


def lab_agent_api() -> ApiFor:
    """Our agent, from this venv, as ExaBGP's API process (the lab's default)."""
    return agent_api([venv_script("anycast-ctl")])


def wait_alive(daemon: Daemon, ready: Callable[[], bool], timeout: float, what: str) -> None:
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


def start_program(
    tag: str,
    node: str,
    netns: str,
    module: str,
    args: list[str],
    name: str,
    timeout: float,
    what: str | None = None,
) -> Daemon:
    """One of the lab's own programs (`python -m module args --ready-file F`) as daemon `name`
    of `node`, its log and ready file in the node's directory; returns once it says ready."""
    directory = state.node_dir(tag, node)
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / f"{name}.ready"
    ready.unlink(missing_ok=True)
    daemon = daemons.spawn(
        tag,
        node,
        [sys.executable, "-m", module, *args, "--ready-file", str(ready)],
        netns=netns,
        log_path=directory / f"{name}.log",
        name=name,
        env={"PYTHONUNBUFFERED": "1", "PYTHONPATH": package_root()},
    )
    wait_alive(daemon, ready.exists, timeout, what or f"{name} on {node}")
    return daemon


def package_root() -> str:
    """PYTHONPATH so `python -m anycast_ctl...` works in a child even when we were not installed."""
    root = str(Path(__file__).resolve().parents[3])
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root
