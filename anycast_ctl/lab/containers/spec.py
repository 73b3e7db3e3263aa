"""A containerlab topology file -> what to create, in containerlab's order (pure).

containerlab creates every node's container (image, cmd, binds relative to the topology file,
sysctls, network-mode), then one veth pair per link with each end in its node's network
namespace under the endpoint's interface name, then runs each node's `exec:` lines in order.
`deploy_spec` turns the file into exactly those steps; `podman.py` carries them out. Only the
keys the anycast-ctl rendering uses are understood; any other node key is refused, so a
deployment never silently differs from what containerlab would do.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from anycast_ctl.errors import Problem, UserError

KNOWN_KEYS = {
    "kind",
    "image",
    "cmd",
    "binds",
    "sysctls",
    "exec",
    "network-mode",
    "restart-policy",
}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):=([^}]*)\}")


@dataclass(frozen=True)
class Bind:
    host: Path
    container: str
    read_only: bool


@dataclass(frozen=True)
class Node:
    name: str
    image: str
    cmd: tuple[str, ...]
    binds: tuple[Bind, ...]
    sysctls: tuple[tuple[str, str], ...]
    exec_lines: tuple[tuple[str, ...], ...]
    restart_policy: str


@dataclass(frozen=True)
class Link:
    a: str
    a_interface: str
    b: str
    b_interface: str


@dataclass(frozen=True)
class DeploySpec:
    lab: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]


def expand(text: str, env: Mapping[str, str]) -> str:
    """containerlab's ${VAR:=default}: the variable's value if set and non-empty, else default."""
    return _VARIABLE.sub(lambda m: env.get(m.group(1)) or m.group(2), text)


def _fail(source: str, where: str, what: str) -> UserError:
    return UserError([Problem(source, where, what)])


def _bind(source: str, where: str, text: str, base: Path) -> Bind:
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise _fail(source, where, f"{text!r}: expected HOST:CONTAINER[:ro|rw]")
    host = Path(parts[0]) if parts[0].startswith("/") else base / parts[0]
    return Bind(host, parts[1], len(parts) == 3 and parts[2] == "ro")


def deploy_spec(doc: object, base: Path, env: Mapping[str, str], source: str) -> DeploySpec:
    """The parsed topology file -> DeploySpec; `base` is the file's directory (binds are
    relative to it); UserError naming the field for anything containerlab would read otherwise."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise _fail(source, "name", "missing: a containerlab topology has a name")
    topo = doc.get("topology")
    nodes_doc = topo.get("nodes") if isinstance(topo, dict) else None
    if not isinstance(topo, dict) or not isinstance(nodes_doc, dict) or not nodes_doc:
        raise _fail(source, "topology.nodes", "missing or empty")
    nodes = []
    for name, spec in nodes_doc.items():
        where = f"topology.nodes.{name}"
        if not isinstance(spec, dict):
            raise _fail(source, where, "must be a mapping")
        unknown = sorted(set(spec) - KNOWN_KEYS)
        if unknown:
            raise _fail(source, f"{where}.{unknown[0]}", "not understood by this deployer")
        if spec.get("kind") != "linux" or not isinstance(spec.get("image"), str):
            raise _fail(source, where, "needs kind: linux and an image")
        if spec.get("network-mode", "none") != "none":
            raise _fail(source, f"{where}.network-mode", "only 'none' is deployed here")
        sysctls = spec.get("sysctls") or {}
        binds = spec.get("binds") or []
        execs = spec.get("exec") or []
        cmd = spec.get("cmd", "")
        if not isinstance(cmd, str):
            raise _fail(source, f"{where}.cmd", "must be a string")
        nodes.append(
            Node(
                name=str(name),
                image=expand(spec["image"], env),
                cmd=tuple(shlex.split(cmd)),
                binds=tuple(
                    _bind(source, f"{where}.binds[{i}]", str(b), base) for i, b in enumerate(binds)
                ),
                sysctls=tuple((str(k), str(v)) for k, v in sysctls.items()),
                exec_lines=tuple(tuple(shlex.split(str(line))) for line in execs),
                restart_policy=str(spec.get("restart-policy", "always")),
            )
        )
    links = []
    for i, link in enumerate(topo.get("links") or []):
        ends = link.get("endpoints") if isinstance(link, dict) else None
        if not isinstance(ends, list) or len(ends) != 2 or not all(":" in str(e) for e in ends):
            raise _fail(source, f"topology.links[{i}].endpoints", "expected [NODE:IF, NODE:IF]")
        (a, ai), (b, bi) = (str(e).split(":", 1) for e in ends)
        for node in (a, b):
            if node not in nodes_doc:
                raise _fail(source, f"topology.links[{i}].endpoints", f"no node {node!r}")
        links.append(Link(a, ai, b, bi))
    return DeploySpec(doc["name"], tuple(nodes), tuple(links))
