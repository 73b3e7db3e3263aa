"""Who the lab runs ExaBGP and the agent as: the unit's user with CAP_NET_ADMIN alone, as
docs/systemd/anycast-exabgp.service does, so that the lab proves the unit's privileges; or
root, with the reason in one line, when that user cannot run them on this machine.

The unit's `User=`, `AmbientCapabilities=CAP_NET_ADMIN` and `CapabilityBoundingSet=` become
setpriv (util-linux) in front of ExaBGP's command line: the user's uid, gid and groups,
CAP_NET_ADMIN as the only inheritable, ambient and bounding capability, and no_new_privs.
Ambient capabilities survive the exec of a program without file capabilities, so ExaBGP, the
agent it starts and the agent's own children (nft, ip, the lifeline guardian) all hold
CAP_NET_ADMIN in their permitted and effective sets, and nothing else.

Whether the user can run them is asked of the machine, not guessed from modes: the lab runs
each interpreter as that user and imports what it will import (a venv made from an interpreter
under /root, or a checkout there, fails that). The answer is kept per process.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anycast_ctl.render.lb_layout import AS_ROOT, SERVICE, RunAs

SETPRIV = "setpriv"
CAPABILITIES = "-all,+net_admin"  # setpriv's syntax: drop every capability, keep CAP_NET_ADMIN
CAP_NET_ADMIN = 12  # linux/capability.h
PROBE_TIMEOUT = 30.0


class PrivilegeWarning(UserWarning):
    """The lab runs ExaBGP and the agent as root: it does not prove the unit's privileges."""


@dataclass(frozen=True)
class Identity:
    """What ExaBGP and its API process run as in the lab.

    `run_as` is what the rendering says (ExaBGP's daemon.user, the stats socket's group);
    `prefix` goes in front of ExaBGP's command line; `env` is added to its environment;
    `gid` owns what ExaBGP and the agent read and write in an LB node's directory.
    `fallback` is None when they run as the service user, else why they run as root."""

    run_as: RunAs
    uid: int
    gid: int
    prefix: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    fallback: str | None = None

    @property
    def unprivileged(self) -> bool:
        return self.fallback is None


ROOT = Identity(run_as=AS_ROOT, uid=0, gid=0)


def setpriv_prefix(user: str, group: str, setpriv: str = SETPRIV) -> tuple[str, ...]:
    """setpriv's arguments for `user` with CAP_NET_ADMIN alone (the unit's privileges)."""
    return (
        setpriv,
        f"--reuid={user}",
        f"--regid={group}",
        "--init-groups",
        f"--inh-caps={CAPABILITIES}",
        f"--ambient-caps={CAPABILITIES}",
        f"--bounding-set={CAPABILITIES}",
        "--no-new-privs",
    )


def script_interpreter(program: str) -> str:
    """The interpreter a script's `#!` line names (a venv's console script), else `program`."""
    try:
        with open(program, "rb") as file:
            first = file.readline(4096)
    except OSError:
        return program
    if not first.startswith(b"#!"):
        return program
    words = first[2:].decode(errors="replace").split()
    return words[0] if words else program


def fallback_line(user: str, reason: str) -> str:
    """The one line the lab says when it cannot run ExaBGP and the agent as `user`."""
    return (
        f"ExaBGP and the agent run as root, not as {user} with CAP_NET_ADMIN alone "
        f"(the unit's privileges are not proven): {reason}"
    )


def service_identity(probes: Sequence[tuple[str, str]], service: RunAs = SERVICE) -> Identity:
    """`service`'s identity when its user exists and can run every (interpreter, code) of
    `probes` under setpriv; else ROOT with the reason in `fallback`."""
    reason, identity = _probe(tuple(probes), service)
    if identity is not None:
        return identity
    return Identity(run_as=ROOT.run_as, uid=0, gid=0, fallback=fallback_line(service.user, reason))


@functools.cache
def _probe(probes: tuple[tuple[str, str], ...], service: RunAs) -> tuple[str, Identity | None]:
    if os.geteuid() != 0:
        return "the lab is not running as root, so it cannot switch users", None
    try:
        user = pwd.getpwnam(service.user)
    except KeyError:
        return f"no user {service.user} on this machine (`make service-user` creates it)", None
    group = service.group or grp.getgrgid(user.pw_gid).gr_name
    setpriv = shutil.which(SETPRIV)
    if setpriv is None:
        return f"no {SETPRIV} on PATH (util-linux)", None
    prefix = setpriv_prefix(service.user, group, setpriv)
    env = {"HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name}
    for interpreter, code in probes:
        problem = _cannot_run(prefix, env, interpreter, code)
        if problem:
            return f"user {service.user} cannot run {interpreter}: {problem}", None
    gid = grp.getgrnam(group).gr_gid
    return "", Identity(run_as=service, uid=user.pw_uid, gid=gid, prefix=prefix, env=env)


def _cannot_run(prefix: tuple[str, ...], env: dict[str, str], interpreter: str, code: str) -> str:
    try:
        done = subprocess.run(
            [*prefix, interpreter, "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"it did not finish within {PROBE_TIMEOUT:g}s"
    if done.returncode == 0:
        return ""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def import_probe(program: str, modules: Sequence[str]) -> tuple[str, str]:
    """(the interpreter of `program`, code that reads the interpreter and `program` and
    imports `modules`). Reading the interpreter matters: a kernel may exec a binary its user
    cannot read, which then runs on whatever libpython and stdlib it finds (Debian's, for a
    venv of a pyenv build under /root), not on its own."""
    reads = ("os.path.realpath(sys.executable)", repr(str(Path(program))))
    code = "import os, sys" + "".join(f"; open({path}, 'rb').close()" for path in reads)
    return script_interpreter(program), code + "".join(f"; import {m}" for m in modules)
