"""The lab runs ExaBGP and the agent as the unit does (docs/systemd.md): user anycast-ctl with
CAP_NET_ADMIN as the only capability in its inheritable, permitted, effective, ambient and
bounding sets, and no_new_privs; what they need CAP_NET_ADMIN for still works (the VIP on lo,
the route in the router's FIB); and what the agent creates in an LB node's directory (control
socket, drain state) and what it reads there have the modes that user needs and no more.
Read from /proc/<pid>/status and stat() of a running default lab, with ExaBGP 5.0 and 4.2.

Skipped, with the lab's own one-line reason, only where that user cannot run them on this
machine (no such user, or a venv or checkout it cannot read: lab/net/privilege.py).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from anycast_ctl.agent.control import SOCKET_MODE
from anycast_ctl.agent.drainstore import STATE_FILE_MODE
from anycast_ctl.agent.exabgp import DIALECTS
from anycast_ctl.config.node import ExabgpDialect
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.net.diagnose import descendants
from anycast_ctl.lab.net.privilege import (
    CAP_NET_ADMIN,
    fallback_line,
    import_probe,
    service_identity,
)
from anycast_ctl.lab.nodes.common import exabgp_program, lab_identity
from anycast_ctl.lab.nodes.files import LB_FILE_MODE, lb_dir_mode
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.topology_up import Lab
from anycast_ctl.render.bfdd import BFDD_CONF
from anycast_ctl.render.lb_layout import AS_ROOT, SERVICE

pytestmark = pytest.mark.root

DEFAULT = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
CLI = str(Path(sys.executable).with_name("anycast-ctl"))
CAPABILITY_SETS = ("CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd")
ONLY_NET_ADMIN = 1 << CAP_NET_ADMIN


def up(lab_tag: str, version: ExabgpDialect) -> Lab:
    try:
        exabgp_program(version)
    except LabError as exc:  # only the 4.2 venv can be missing; `make test` makes it
        pytest.skip(str(exc))
    identity = lab_identity(version)
    if identity.fallback:
        pytest.skip(identity.fallback)
    return Lab.up(DEFAULT, tag=lab_tag, timeout=60, exabgp=version)


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def service_ids() -> tuple[int, int]:
    assert SERVICE.group is not None
    return pwd.getpwnam(SERVICE.user).pw_uid, grp.getgrnam(SERVICE.group).gr_gid


def lb_nodes(lab: Lab) -> list[str]:
    return [lb.name for lb in lab.topology.lbs if lb.vips]


def processes(lab: Lab, lb: str) -> dict[str, int]:
    """ExaBGP, its API process (our agent) and the agent's lifeline guardian on `lb`."""
    agent = lab.agent_pid(lb)
    assert agent is not None, f"no agent under ExaBGP on {lb}"
    guardians = [p for p in descendants(agent) if "lifeline.py" in daemons.cmdline(p)]
    assert len(guardians) == 1, f"{lb}: guardians {guardians}"
    return {"exabgp": lab.daemon(lb, "exabgp").pid, "agent": agent, "guardian": guardians[0]}


@pytest.mark.parametrize("version", DIALECTS, ids=lambda v: f"exabgp-{v}")
def test_exabgp_agent_and_guardian_run_as_the_service_user_with_cap_net_admin_alone(
    lab_tag, version
):
    lab = up(lab_tag, version)
    uid, gid = service_ids()
    for lb in lb_nodes(lab):
        for name, pid in processes(lab, lb).items():
            st, who = proc_status(pid), f"{name} ({pid}) on {lb}"
            assert st["Uid"].split() == [str(uid)] * 4, f"{who}: Uid {st['Uid']}"
            assert st["Gid"].split() == [str(gid)] * 4, f"{who}: Gid {st['Gid']}"
            assert st["Groups"].split() == [str(gid)], f"{who}: Groups {st['Groups']}"
            for field in CAPABILITY_SETS:
                assert int(st[field], 16) == ONLY_NET_ADMIN, f"{who}: {field} {st[field]}"
            assert st["NoNewPrivs"] == "1", f"{who}: NoNewPrivs {st['NoNewPrivs']}"
    # What CAP_NET_ADMIN is for: each agent put the VIP on its lo (converged: in r1's FIB).
    vip = lab.topology.vip("web").address
    for lb in lb_nodes(lab):
        shown = json.loads(lab.exec(lb, ["ip", "-j", "addr", "show", "dev", "lo"]).stdout)
        held = {f"{a['local']}/{a['prefixlen']}" for a in shown[0]["addr_info"]}
        assert str(vip) in held, f"{lb}: lo holds {sorted(held)}"
    assert sorted(lab.fib_nexthops("r1", "web")) == lb_nodes(lab)


def mode_owner(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_socket_drain_state_configs_and_logs_have_the_modes_the_service_user_needs(lab_tag):
    lab = up(lab_tag, "5.0")
    uid, gid = service_ids()
    frr = grp.getgrnam("frr").gr_gid
    paths = lab.lb_paths("lb1")
    directory = paths.directory
    # root's directory; the agent's group creates in it, removes only its own (sticky); o+x
    # only for bfdd (user frr) to open bfdd.conf.
    frr_reads = (directory / BFDD_CONF).exists()
    assert mode_owner(directory) == (lb_dir_mode(frr_reads), 0, gid)
    assert mode_owner(paths.control_socket) == (SOCKET_MODE, uid, gid)
    assert mode_owner(paths.haproxy_socket) == (0o660, 0, gid)  # HAProxy's, the agent's group
    for name in ("exabgp.conf", "exabgp.env", "node.yaml"):
        assert mode_owner(directory / name) == (LB_FILE_MODE, 0, gid), name
    assert mode_owner(directory / "haproxy.cfg") == (0o600, 0, 0)
    if frr_reads:
        assert mode_owner(directory / BFDD_CONF) == (LB_FILE_MODE, 0, frr)
    for log in directory.glob("*.log"):  # each daemon writes the descriptor it inherited
        assert mode_owner(log) == (0o600, 0, 0), log.name
    # The lab CA: the agent's TLS checks open it by name; nothing else of the PKI is theirs.
    assert mode_owner(lab.ca_file.parent) == (0o710, 0, gid)

    config = str(lab.node_config_path("lb1"))
    drained = subprocess.run(
        [CLI, "drain", "--config", config, "--reason", "privilege test"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert drained.returncode == 0, drained.stderr
    wait_for(paths.drain_file.exists, 10, what="the agent's drain state")
    assert mode_owner(paths.drain_file) == (STATE_FILE_MODE, uid, gid)
    leftovers = [p.name for p in directory.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temporary files left: {leftovers}"


def test_an_interpreter_the_user_cannot_read_makes_the_lab_fall_back_to_root_saying_why(
    tmp_path: Path,
):
    """As a venv made from a pyenv build under /root: pytest keeps tmp_path under a 0700 dir."""
    assert any(stat.S_IMODE(p.stat().st_mode) & 0o001 == 0 for p in tmp_path.parents)
    interpreter = tmp_path / "python3"
    interpreter.symlink_to(sys.executable)
    script = tmp_path / "exabgp"
    script.write_text(f"#!{interpreter}\n")
    reachable = service_identity([import_probe(sys.executable, ["json"])])
    if reachable.fallback:  # the user is missing here: the same one line, for that reason
        pytest.skip(reachable.fallback)
    identity = service_identity([import_probe(str(script), ["json"])])
    assert identity.run_as == AS_ROOT and identity.prefix == ()
    assert identity.fallback is not None and "\n" not in identity.fallback
    assert identity.fallback.startswith(fallback_line(SERVICE.user, f"user {SERVICE.user}"))
    assert str(interpreter) in identity.fallback and "Permission denied" in identity.fallback
