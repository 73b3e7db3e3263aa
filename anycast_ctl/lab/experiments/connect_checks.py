"""The flaky scenario's agent side: an LB node's VIP checks as TCP connects for the period.

`render node` gives each VIP group a `listening` check (the kernel's listener table, no
connection made), so the late SYNs of the flaky scenario (flaky.py) never reach it and the
scenario would measure nothing of the agent's state machine. For the period, the node's
config has those checks as `tcp` checks of the same address and port (a connect over `lo`:
the path the rule makes late, and the path of the baseline's `/dev/tcp` probe), taken by a
reload (SIGHUP: every VIP keeps its state); afterwards the rendered config is back, by a
reload too. Both wait until the agent's status shows the checks of the new kind.

    use_connects(dep, "lb1")   # before flaky.apply
    restore(dep, "lb1")        # after flaky.remove
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.deployment import Deployment
from anycast_ctl.lab.net import daemons

LISTENING, CONNECT = "type: listening", "type: tcp"
TAKEN_WITHIN = 5.0  # s for the agent to reload and run the new checks once (a tick is 0.1 s)
LOOK_EVERY = 0.05


def _saved(path: Path) -> Path:
    return path.with_name(path.name + ".rendered")


def use_connects(dep: Deployment, lb: str) -> None:
    path = Path(dep.lab.node_config_path(lb))
    text = path.read_text()
    if LISTENING not in text:
        raise LabError(f"{path}: no `listening` check to make a TCP connect for the flaky period")
    _saved(path).write_text(text)
    _reload(dep, lb, path, text.replace(LISTENING, CONNECT), "connected to ")


def restore(dep: Deployment, lb: str) -> None:
    path = Path(dep.lab.node_config_path(lb))
    saved = _saved(path)
    if saved.exists():
        _reload(dep, lb, path, saved.read_text(), "listening on ")
        saved.unlink()


def _reload(dep: Deployment, lb: str, path: Path, text: str, detail: str) -> None:
    """Write the config, SIGHUP the agent, and wait until every check that was a
    `listening` one reports a result of the new kind (its detail starts with `detail`)."""
    path.write_text(text)
    pid = dep.api_pid(lb)
    if pid is None:
        raise LabError(f"{lb}: no agent running to reload {path}")
    daemons.signal_pid(pid, signal.SIGHUP)
    deadline = time.monotonic() + TAKEN_WITHIN
    while True:
        details = _vip_check_details(dep, lb)
        if details and all(d.startswith(detail) for d in details):
            return
        if time.monotonic() > deadline:
            raise LabError(
                f"{lb}: the agent did not take {path} within {TAKEN_WITHIN:g} s "
                f"(its VIP checks say: {sorted(set(details))[:3]})"
            )
        time.sleep(LOOK_EVERY)


def _vip_check_details(dep: Deployment, lb: str) -> list[str]:
    """The latest details of the checks `render node` names `<group>-tcp`."""
    status = dep.lab.agent_request(lb, {"op": "status"})
    return [
        check["detail"]
        for vip in status.get("vips", [])
        for check in vip.get("checks", [])
        if str(check.get("name", "")).endswith("-tcp")
    ]
