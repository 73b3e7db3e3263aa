"""Deploy a rendered containerlab topology with podman, as containerlab would (I/O).

    dep = deploy(Path("lab/default/default.clab.yml"), tag="acx-t4242-0")
    dep.exec("r1", "vtysh", "-c", "show bgp summary json")
    destroy(tag)            # every container labelled with the tag; their links go with them

Steps, in containerlab's order: one container per node (`podman run -d --network none
--privileged` — containerlab's default for kind linux — with the node's cmd, binds and
sysctls), then one veth pair per link created with each end directly in its node's network
namespace (by the container's pid) under the endpoint's name and set up, then every node's
`exec:` lines in order, nodes in parallel. Containers are named `<tag>-<node>` and labelled
`anycast-ctl.lab=<tag>`, so concurrent deployments never share a name and `destroy(tag)`
finds everything. podman runs with the project's images/containers.conf. Every process goes
through lab/net/daemons.py (tagged).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from anycast_ctl.lab.containers.spec import DeploySpec, Node, deploy_spec
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.net import daemons
from anycast_ctl.lab.net.daemons import CommandResult

REPO_CONF = Path(__file__).resolve().parents[3] / "images" / "containers.conf"
LABEL = "anycast-ctl.lab"
STOP_TIMEOUT = 2  # seconds podman waits after SIGTERM; the lab keeps no state worth a grace


def containers_conf() -> Path:
    return Path(os.environ.get("ANYCAST_CONTAINERS_CONF", str(REPO_CONF)))


def _env() -> dict[str, str]:
    return {"CONTAINERS_CONF": str(containers_conf())}


def podman(
    tag: str, *args: str, timeout: float = 120.0, stdin: str | None = None, runtime: str = "podman"
) -> CommandResult:
    """podman (with the project's containers.conf), or docker for a containerlab deployment."""
    env = _env() if runtime == "podman" else None
    return daemons.run(tag, [runtime, *args], env=env, timeout=timeout, stdin=stdin)


def _must(result: CommandResult, what: str) -> str:
    if not result.ok:
        raise LabError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-400:]}")
    return result.stdout


def unavailable() -> str | None:
    """Why podman cannot deploy here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (rootful podman, veths into containers' namespaces)"
    for tool in ("podman", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make images installs podman)"
    if not containers_conf().is_file():
        return f"{containers_conf()} is missing"
    return None


def container_name(tag: str, node: str) -> str:
    return f"{tag}-{node}"


@dataclass
class Deployment:
    tag: str  # our processes' tag (lab/net/daemons.py)
    spec: DeploySpec
    pids: dict[str, int]  # node -> its container's init pid (its network namespace)
    prefix: str = ""  # container names are <prefix>-<node>: our tag, or containerlab's clab-<lab>
    runtime: str = "podman"

    def name(self, node: str) -> str:
        return container_name(self.prefix or self.tag, node)

    def exec(
        self, node: str, *argv: str, stdin: str | None = None, timeout: float = 60.0
    ) -> CommandResult:
        """`podman exec` in the node's container (stdin passed when given)."""
        flags = ["-i"] if stdin is not None else []
        return podman(
            self.tag, "exec", *flags, self.name(node), *argv, stdin=stdin, timeout=timeout
        )

    def in_netns(self, node: str, *argv: str, timeout: float = 10.0) -> CommandResult:
        """A host command inside the node's network namespace (fast: no podman exec)."""
        return daemons.run(
            self.tag, ["nsenter", "-t", str(self.pids[node]), "-n", *argv], timeout=timeout
        )

    def running(self) -> dict[str, bool]:
        """node -> whether its container is running (a supervisor that gave up stops it)."""
        names = [self.name(n.name) for n in self.spec.nodes]
        fmt = "{{.Name}} {{.State.Status}}"
        out = podman(self.tag, "inspect", "--format", fmt, *names, runtime=self.runtime)
        states = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
        states = {name.lstrip("/"): state for name, state in states.items()}  # docker: "/name"
        return {n.name: states.get(self.name(n.name)) == "running" for n in self.spec.nodes}


def _run_args(tag: str, node: Node) -> list[str]:
    args = ["run", "-d", "--name", container_name(tag, node.name), "--hostname", node.name]
    args += ["--label", f"{LABEL}={tag}", "--network", "none", "--privileged"]
    args += ["--restart", node.restart_policy.lower()]
    for key, value in node.sysctls:
        args += ["--sysctl", f"{key}={value}"]
    for bind in node.binds:
        args += ["-v", f"{bind.host.resolve()}:{bind.container}{':ro' if bind.read_only else ''}"]
    return [*args, node.image, *node.cmd]


def _create(tag: str, node: Node) -> int:
    for bind in node.binds:
        if not bind.host.exists():  # containerlab refuses these too
            raise LabError(f"{node.name}: bind source {bind.host} does not exist")
    _must(podman(tag, *_run_args(tag, node)), f"podman run {node.name}")
    pid = _must(
        podman(tag, "inspect", "--format", "{{.State.Pid}}", container_name(tag, node.name)),
        f"podman inspect {node.name}",
    ).strip()
    if not pid.isdigit() or pid == "0":
        raise LabError(f"{node.name}: container is not running (pid {pid!r})")
    return int(pid)


def _wire(dep: Deployment) -> None:
    for i, link in enumerate(dep.spec.links):
        a, b = dep.pids[link.a], dep.pids[link.b]
        _must(
            daemons.run(
                dep.tag,
                [
                    "ip",
                    "link",
                    "add",
                    link.a_interface,
                    "netns",
                    str(a),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    link.b_interface,
                    "netns",
                    str(b),
                ],
            ),
            f"link {i} {link.a}:{link.a_interface} - {link.b}:{link.b_interface}",
        )
        for node, interface in ((link.a, link.a_interface), (link.b, link.b_interface)):
            _must(
                dep.in_netns(node, "ip", "link", "set", interface, "up"), f"{node} {interface} up"
            )


def _exec_all(dep: Deployment) -> None:
    def one(node: Node) -> None:
        for argv in node.exec_lines:
            _must(dep.exec(node.name, *argv), f"{node.name}: exec {' '.join(argv)}")

    with ThreadPoolExecutor(max_workers=max(1, len(dep.spec.nodes))) as pool:
        for done in [pool.submit(one, n) for n in dep.spec.nodes]:
            done.result()


def load_spec(clab_file: Path, env: Mapping[str, str] | None = None) -> DeploySpec:
    doc = yaml.safe_load(clab_file.read_text())
    return deploy_spec(doc, clab_file.parent, os.environ if env is None else env, str(clab_file))


def deploy(clab_file: Path, tag: str, env: Mapping[str, str] | None = None) -> Deployment:
    """Create, wire and configure the lab; on any failure everything made so far is removed."""
    spec = load_spec(clab_file, env)
    dep = Deployment(tag, spec, {})
    try:
        for node in spec.nodes:
            dep.pids[node.name] = _create(tag, node)
        _wire(dep)
        _exec_all(dep)
    except BaseException:
        destroy(tag)
        raise
    return dep


def attach(clab_file: Path, prefix: str, tag: str, runtime: str = "podman") -> Deployment:
    """A running deployment of `clab_file` whose containers are <prefix>-<node> (containerlab
    names them clab-<lab>-<node>; our deployer <tag>-<node>), with podman or docker."""
    spec = load_spec(clab_file)
    dep = Deployment(tag, spec, {}, prefix=prefix, runtime=runtime)
    for node in spec.nodes:
        out = podman(
            tag, "inspect", "--format", "{{.State.Pid}}", dep.name(node.name), runtime=runtime
        )
        pid = out.stdout.strip()
        if not out.ok or not pid.isdigit() or pid == "0":
            raise LabError(f"{dep.name(node.name)}: no running container ({runtime} inspect)")
        dep.pids[node.name] = int(pid)
    return dep


def tagged_containers(tag: str) -> list[str]:
    out = podman(tag, "ps", "-a", "--filter", f"label={LABEL}={tag}", "--format", "{{.Names}}")
    return out.stdout.split()


def destroy(tag: str) -> list[str]:
    """Remove every container labelled with `tag` (their namespaces and veths go with them)."""
    names = tagged_containers(tag)
    if names:
        _must(
            podman(tag, "rm", "-f", "-t", str(STOP_TIMEOUT), *names, timeout=120),
            f"podman rm {' '.join(names)}",
        )
    return names
