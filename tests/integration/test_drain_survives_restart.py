"""A drain survives what a restart under systemd does: the agent (with ExaBGP) stops, its
runtime directory (RuntimeDirectory=, a tmpfs) is removed, and it starts again. The drain
state lives in the state directory, as `render node` writes it (--state-dir), so the VIP
stays withdrawn from the router's FIB although its checks pass, until `undrain`.

Real FRR, ExaBGP, agent and HAProxy in namespaces (the default topology; lb1 is the subject).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.nodes import lb as lb_node
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.topology_up import Lab
from anycast_ctl.render.node_config import node_config

pytestmark = pytest.mark.root

DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
CLI = str(Path(sys.executable).with_name("anycast-ctl"))
VIP = "192.0.2.10/32"


def anycast_ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=30)


def status(node_yaml: Path) -> dict[str, Any] | None:
    done = anycast_ctl("status", "--config", str(node_yaml), "--json")
    return json.loads(done.stdout) if done.returncode == 0 else None


def restart_agent(lab: Lab, runtime: Path | None = None) -> None:
    """Stop ExaBGP and its agent (SIGTERM, as systemctl stop does), optionally remove the
    runtime directory as systemd does on stop, and start them again with the same config."""
    daemons.stop(lab.daemon("lb1", "exabgp"), signal.SIGTERM, timeout=10)
    if runtime is not None:
        shutil.rmtree(runtime)
        assert not runtime.exists()
    lb_node.start_exabgp(lab.tag, "lb1", lab.namespace("lb1"))


def test_a_drained_vip_stays_withdrawn_after_a_restart_that_removes_the_runtime_dir(
    lab_tag: str,
) -> None:
    lab = Lab.up(DEFAULT, tag=lab_tag, timeout=60)
    runtime = Path(f"/tmp/acx-rt-{os.getpid()}")  # short: socket paths stop at 107 bytes
    # As StateDirectory= makes it: the agent's user's, 0750 (the lab removes it with the rest).
    state = lab.dir / "state"
    state.mkdir(mode=0o750)
    os.chown(state, lab.identity.uid, lab.identity.gid)
    try:
        # lb1's config as `render node --run-dir RUNTIME --state-dir STATE` writes it, with
        # HAProxy's stats socket where the lab's HAProxy has it.
        rendered = node_config(
            lab.topology, "lb1", run_dir=runtime, state_dir=state, profile=lab.profile
        )
        assert rendered.drain.state_file == state / "lb1" / "drain.json"
        node_yaml = lab.node_config_path("lb1")
        config = yaml.safe_load(node_yaml.read_text())
        config["control"]["socket"] = str(rendered.control.socket)
        config["drain"]["state_file"] = str(rendered.drain.state_file)
        node_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
        restart_agent(lab)
        wait_for(lambda: "lb1" in lab.fib_nexthops("r1", "web"), 30, what="lb1 announced")

        drained = anycast_ctl("drain", "--config", str(node_yaml), "--reason", "kernel upgrade")
        assert drained.returncode == 0, drained.stderr
        wait_for(lambda: "lb1" not in lab.fib_nexthops("r1", "web"), 5, what="lb1 withdrawn")
        assert (state / "lb1" / "drain.json").exists()

        restart_agent(lab, runtime=runtime)
        answer: dict[str, Any] = {}

        def healthy_and_answering() -> bool:
            got = status(node_yaml)
            if not got:
                return False
            answer.update(got)
            checks = got["vips"][0]["checks"]
            return bool(checks) and all(c["health"] == "ok" for c in checks)

        # Up again, its checks passing (it would announce if it were not drained) ...
        wait_for(healthy_and_answering, 30, what="the restarted agent with passing checks")
        assert runtime.exists()  # the agent made its socket's directory again
        vip = answer["vips"][0]
        assert (vip["address"], vip["state"], vip["announced"]) == (VIP, "drained", False)
        assert vip["drain"]["reason"] == "kernel upgrade"
        wait_for(
            lambda: lab.bgp_sessions("r1").get("lb1") == "Established",
            30,
            what="r1's session with lb1 back",
        )
        # ... and the router still has no path to lb1.
        assert "lb1" not in lab.fib_nexthops("r1", "web")

        undrained = anycast_ctl("undrain", "--config", str(node_yaml))
        assert undrained.returncode == 0, undrained.stderr
        wait_for(lambda: "lb1" in lab.fib_nexthops("r1", "web"), 10, what="lb1 back")
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
