"""Write a rendered file map (render/node_files.py) under a lab's state dir: the one place the
lab writes node configs and certificates.

Keys are "<node>/<file>" and "pki/<file>". Permissions follow what reads them: a router's
directory is root:frr 0750 and its files 0640 (FRR drops to user frr before it reads -f, and
the MD5 keys stay private); the PKI directory is 0700 and private keys 0600.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
from pathlib import Path

from anycast_ctl.config.topology import Topology
from anycast_ctl.lab.nodes.pki import VALIDITY, issue_requests
from anycast_ctl.render.node_files import PKI_DIR, NodeFiles


def write_files(
    root: Path, files: dict[str, str], *, frr_nodes: frozenset[str] = frozenset()
) -> list[Path]:
    """Write `files` under `root` (a lab's state dir), those that changed; nodes in
    `frr_nodes` get FRR's permissions. Returns the files written."""
    written = []
    for relative, text in files.items():
        path = root / relative
        node = relative.split("/", 1)[0]
        directory = path.parent
        directory.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_text() == text:
            continue  # a running daemon may be reading it: never truncate what stays the same
        path.write_text(text)
        if node in frr_nodes:
            gid = grp.getgrnam("frr").gr_gid
            os.chown(directory, 0, gid)
            directory.chmod(0o750)
            os.chown(path, 0, gid)
            path.chmod(0o640)
        written.append(path)
    return written


def write_certificates(
    root: Path,
    rendered: NodeFiles,
    lab_name: str,
    now: dt.datetime,
    validity: dt.timedelta = VALIDITY,
) -> list[Path]:
    """Issue the rendered certificate requests from a fresh lab CA and write them under root."""
    (root / PKI_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)
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
) -> list[Path]:
    """Everything the lab's nodes read: configs, then the CA and the backends' certificates."""
    routers = frozenset(r.name for r in topology.routers)
    written = write_files(root, rendered.files, frr_nodes=routers)
    if rendered.certificates:
        written += write_certificates(root, rendered, lab_name, now, validity)
    return written
