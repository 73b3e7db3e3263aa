"""FRR (zebra + bgpd) in a lab namespace, and vtysh queries against it.

The integrated frr.conf is split per daemon (`daemon_configs`), so neither logs the other's
commands as errors and a real config error stands out. Both run in the foreground under our
spawn() (so their pid is the one we track and their log goes to a file); `-N <namespace>` gives
each router its own /run/frr/<namespace>/ for pid files and vty sockets, and -P 0 turns the TCP
vty off. The daemons drop to user frr *before* reading -f: the config directory must be
readable by it, or they start empty and say nothing (DESIGN.md).
"""

from __future__ import annotations

import grp
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from anycast_ctl.lab import daemons, state
from anycast_ctl.lab.daemons import Daemon
from anycast_ctl.lab.poll import wait_for
from anycast_ctl.lab.state import LabError

FRR_SBIN = Path("/usr/lib/frr")
FRR_RUN_DIR = Path("/run/frr")
VTYSH = "vtysh"


@dataclass(frozen=True)
class FrrRouter:
    tag: str
    node: str
    netns: str
    config_path: Path
    zebra: Daemon
    bgpd: Daemon


_ZEBRA_ONLY = re.compile(r"^(no )?(zebra |ip forwarding|ipv6 forwarding)")
_VTYSH_ONLY = re.compile(r"^service integrated-vtysh-config")
_BGPD_BLOCK = re.compile(r"^router bgp ")


def daemon_configs(config_text: str) -> dict[str, str]:
    """Split an integrated frr.conf into zebra's and bgpd's parts (pure).

    Top-level `router bgp` blocks (to their column-0 `exit`) go to bgpd only, zebra's own
    commands to zebra only; shared lines (hostname, log, prefix-lists, route-maps) to both.
    """
    out: dict[str, list[str]] = {"zebra": [], "bgpd": []}
    in_bgp = False
    for line in config_text.splitlines():
        if in_bgp or _BGPD_BLOCK.match(line):
            in_bgp = line not in ("exit", "end") if in_bgp else True
            out["bgpd"].append(line)
        elif _ZEBRA_ONLY.match(line):
            out["zebra"].append(line)
        elif not _VTYSH_ONLY.match(line):
            out["zebra"].append(line)
            out["bgpd"].append(line)
    return {daemon: "\n".join(lines) + "\n" for daemon, lines in out.items()}


def _write_configs(tag: str, node: str, config_text: str) -> dict[str, Path]:
    directory = state.node_dir(tag, node)
    directory.mkdir(parents=True, exist_ok=True)
    frr_gid = grp.getgrnam("frr").gr_gid
    # root:frr 0750/0640: the daemons (user frr) can read them; the MD5 keys stay private.
    os.chown(directory, 0, frr_gid)
    directory.chmod(0o750)
    texts = {"frr": config_text, **daemon_configs(config_text)}
    paths = {}
    for name, text in texts.items():
        path = paths[name] = directory / f"{name}.conf"
        path.write_text(text)
        os.chown(path, 0, frr_gid)
        path.chmod(0o640)
    return paths


def start_frr(
    tag: str, node: str, config_text: str, netns: str | None = None, timeout: float = 20.0
) -> FrrRouter:
    """Write the config, start zebra then bgpd in the node's namespace, and wait (bounded)
    until `vtysh -N <ns> -c 'show bgp summary json'` answers with the config loaded."""
    ns = netns or state.namespace_name(tag, node)
    configs = _write_configs(tag, node, config_text)
    run_dir = FRR_RUN_DIR / ns
    state.record_file(tag, run_dir)
    logs = state.node_dir(tag, node)
    started: dict[str, Daemon] = {}
    for name in ("zebra", "bgpd"):
        pidfile = run_dir / f"{name}.pid"
        argv = [
            str(FRR_SBIN / name),
            "-N",
            ns,
            "-f",
            str(configs[name]),
            "-i",
            str(pidfile),
            "-P",
            "0",
        ]
        started[name] = daemons.spawn(
            tag, node, argv, netns=ns, log_path=logs / f"{name}.log", pidfile=pidfile, name=name
        )
    router = FrrRouter(tag, node, ns, configs["frr"], started["zebra"], started["bgpd"])
    _await_ready(router, config_text, timeout)
    return router


def _await_ready(router: FrrRouter, config_text: str, timeout: float) -> None:
    asn = re.search(r"^router bgp (\d+)", config_text, re.MULTILINE)

    def ready() -> bool:
        for d in (router.zebra, router.bgpd):
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
