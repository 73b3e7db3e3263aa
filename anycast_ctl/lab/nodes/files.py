"""Write a rendered file map (render/node_files.py) under a lab's state dir: the one place the
lab writes node configs and certificates.

Keys are "<node>/<file>" and "pki/<file>". Permissions follow what reads them: a router's
directory is root:frr 0750 and its files 0640 (FRR drops to user frr before it reads -f, and
the MD5 keys stay private); the PKI directory is 0700 and private keys 0600.

An LB node's directory holds what root's daemons read (haproxy.cfg), what ExaBGP and the agent
read (exabgp.conf/env, node.yaml, ...), bfdd's bfdd.conf, and what the agent creates there
(agent.sock, drain.json). With `service_gid`, the group ExaBGP and the agent run as
(lab/net/privilege.py): the directory is root:<that group> 1770, so the agent creates and
replaces its own files and cannot remove or rename root's (sticky); `o+x` only when bfdd (user
frr) must open bfdd.conf in it, which is root:frr 0640. haproxy.cfg is root's alone (0600), the
rest root:<group> 0640. The PKI directory then lets that group in to open the CA certificate by
name (0710: the agent's TLS checks); the keys stay root's.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
from pathlib import Path

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.nodes.pki import VALIDITY, issue_requests
from anycast_ctl.render.bfdd import BFDD_CONF
from anycast_ctl.render.node_files import PKI_DIR, NodeFiles

ROOT_ONLY = frozenset({"haproxy.cfg"})  # HAProxy runs as root and reads it before anything
FRR_READS = frozenset({BFDD_CONF})
LB_DIR_MODE = 0o1770
LB_FILE_MODE = 0o640


def lb_file_access(name: str, service_gid: int, frr_gid: int) -> tuple[int, int]:
    """(group, mode) of file `name` in an LB node's directory; its owner is root."""
    if name in ROOT_ONLY:
        return 0, 0o600
    if name in FRR_READS:
        return frr_gid, LB_FILE_MODE
    return service_gid, LB_FILE_MODE


def lb_dir_mode(frr_reads: bool) -> int:
    """An LB node's directory: o+x only when bfdd (user frr) opens its config in it."""
    return LB_DIR_MODE | (0o001 if frr_reads else 0)


def write_files(
    root: Path,
    files: dict[str, str],
    *,
    frr_nodes: frozenset[str] = frozenset(),
    lb_nodes: frozenset[str] = frozenset(),
    service_gid: int = 0,
) -> list[Path]:
    """Write `files` under `root` (a lab's state dir), those that changed; nodes in
    `frr_nodes` get FRR's permissions, those in `lb_nodes` an LB node's for `service_gid`.
    Returns the files written."""
    written = []
    frr_gid = grp.getgrnam("frr").gr_gid if frr_nodes or lb_nodes else 0
    for node in lb_nodes:
        names = {rel.split("/", 1)[1] for rel in files if rel.startswith(f"{node}/")}
        directory = root / node
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, 0, service_gid)
        frr_reads = bool(names & FRR_READS) or any((directory / n).exists() for n in FRR_READS)
        directory.chmod(lb_dir_mode(frr_reads))
    for relative, text in files.items():
        path = root / relative
        node, name = relative.split("/", 1)
        directory = path.parent
        directory.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_text() == text:
            continue  # a running daemon may be reading it: never truncate what stays the same
        path.write_text(text)
        if node in frr_nodes:
            os.chown(directory, 0, frr_gid)
            directory.chmod(0o750)
            os.chown(path, 0, frr_gid)
            path.chmod(0o640)
        elif node in lb_nodes:
            gid, mode = lb_file_access(name, service_gid, frr_gid)
            os.chown(path, 0, gid)
            path.chmod(mode)
        written.append(path)
    return written


def write_certificates(
    root: Path,
    rendered: NodeFiles,
    lab_name: str,
    now: dt.datetime,
    validity: dt.timedelta = VALIDITY,
    service_gid: int = 0,
) -> list[Path]:
    """Issue the rendered certificate requests from a fresh lab CA and write them under root;
    group `service_gid` (not root) may open the CA certificate by name."""
    directory = root / PKI_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chown(directory, 0, service_gid)
    directory.chmod(0o710 if service_gid else 0o700)
    written = []
    for relative, data in issue_requests(rendered.certificates, lab_name, now, validity).items():
        path = root / relative
        if path.suffix == ".key":
            path.touch(mode=0o600)
        path.write_bytes(data)
        written.append(path)
    return written


def write_node_files(
    root: Path,
    topology: Topology,
    rendered: NodeFiles,
    lab_name: str,
    now: dt.datetime,
    validity: dt.timedelta = VALIDITY,
    service_gid: int = 0,
) -> list[Path]:
    """Everything the lab's nodes read: configs, then the CA and the backends' certificates.
    `service_gid`: the group ExaBGP and the agent run as (0: root)."""
    routers = frozenset(r.name for r in topology.routers)
    lbs = frozenset(lb.name for lb in topology.lbs if lb.vips)
    written = write_files(
        root, rendered.files, frr_nodes=routers, lb_nodes=lbs, service_gid=service_gid
    )
    if rendered.certificates:
        written += write_certificates(root, rendered, lab_name, now, validity, service_gid)
    return written
