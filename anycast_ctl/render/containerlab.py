"""Topology -> a containerlab lab: `<name>.clab.yml` plus every node's rendered configs.

`containerlab_files` is pure (relative path -> text); `render_containerlab` writes them under
`<out_dir>/<topology name>/`. The configs come from `node_files.topology_files`, the function
the namespace lab writes its nodes from (frr.conf, the agent's node.yaml, haproxy.cfg, ExaBGP's
files), with paths inside the containers, so a containerlab run and a namespace run cannot
disagree. Output is deterministic:
topology order throughout, no timestamps.

    python -m anycast_ctl.render.containerlab TOPOLOGY OUT_DIR
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jinja2
import yaml

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import EXIT_USAGE, UserError
from anycast_ctl.render.hostnet import Route, setup_commands, static_routes
from anycast_ctl.render.lb_layout import lb_paths
from anycast_ctl.render.node_files import NODE_YAML, agent_api, topology_files
from anycast_ctl.render.templating import environment

FRR_IMAGE = (
    "quay.io/frrouting/frr:8.4.4"  # the FRR release the namespace lab runs (Debian bookworm)
)
# HAProxy 2.6 + ExaBGP 5.0 + Python with anycast-ctl; build it yourself.
NODE_IMAGE = "anycast-ctl-node:latest"
CONF_DIR = PurePosixPath("/etc/anycast-ctl")  # where an LB node's directory is mounted
RUN_DIR = PurePosixPath("/run/anycast-ctl")  # sockets inside LB containers
STATE_DIR = PurePosixPath("/var/lib/anycast-ctl")  # drain state: kept when the agent restarts
LOG_DIR = PurePosixPath("/var/log/anycast-ctl")
# ExaBGP finds it in the LB image's PATH and runs `anycast-ctl agent run node.yaml`.
AGENT_PROGRAM = "anycast-ctl"


@dataclass(frozen=True)
class Image:
    nodes: str
    kinds: tuple[str, ...]
    variable: str
    default: str
    needs: str

    @property
    def reference(self) -> str:
        # containerlab expands ${VAR:=default} in the topology file when it reads it.
        return f"${{{self.variable}:={self.default}}}"


IMAGES = (
    Image(
        "routers",
        ("router",),
        "ANYCAST_FRR_IMAGE",
        FRR_IMAGE,
        "FRR 8.4 (zebra, bgpd, watchfrr), `ip`, `sysctl`",
    ),
    Image(
        "LB nodes",
        ("lb",),
        "ANYCAST_LB_IMAGE",
        NODE_IMAGE,
        "HAProxy 2.6, ExaBGP 5.0, Python 3.11+ with anycast-ctl, iproute2, setsid",
    ),
    Image(
        "backends, clients",
        ("backend", "client"),
        "ANYCAST_HOST_IMAGE",
        NODE_IMAGE,
        "iproute2; backends a TLS server, clients a TLS client (anycast-ctl or openssl)",
    ),
)


def image_for(kind: str) -> Image:
    return next(i for i in IMAGES if kind in i.kinds)


def _env() -> jinja2.Environment:
    return environment()


def clab_file_name(topology: Topology) -> str:
    return f"{topology.name}.clab.yml"


def containerlab_files(topology: Topology, *, profile: str = "recommended") -> dict[str, str]:
    """Every file of the lab directory, relative path -> text (the same wherever it is written)."""
    plan = topology.address_plan()
    routes = static_routes(topology, plan)
    run_dir, state_dir = Path(str(RUN_DIR)), Path(str(STATE_DIR))
    # Backends' certificate requests are not rendered: containers bring their own TLS server.
    files = topology_files(
        topology,
        run_dir=run_dir,
        state_dir=state_dir,
        conf_dir=lambda _node: CONF_DIR,
        api=agent_api([AGENT_PROGRAM]),
        profile=profile,
    ).files
    for name in topology.kinds:
        if f"{name}/frr.conf" in files:
            files[f"{name}/daemons"] = (
                _env().get_template("frr-daemons.j2").render(node=name, topology=topology.name)
            )
        if f"{name}/{NODE_YAML}" in files:
            files[f"{name}/start.sh"] = (
                _env()
                .get_template("lb-start.sh.j2")
                .render(
                    node=name,
                    topology=topology.name,
                    paths=lb_paths(run_dir, name, state_dir),
                    conf_dir=CONF_DIR,
                    log_dir=LOG_DIR,
                )
            )
    files[clab_file_name(topology)] = _clab_yaml(topology, plan, routes, files)
    files["README.md"] = _readme(topology, plan)
    return dict(sorted(files.items()))


def _clab_yaml(
    topology: Topology,
    plan: AddressPlan,
    routes: dict[str, tuple[Route, ...]],
    files: dict[str, str],
) -> str:
    nodes: dict[str, dict[str, object]] = {}
    for name, kind in topology.kinds.items():
        spec: dict[str, object] = {"kind": "linux", "image": image_for(kind).reference}
        if kind == "router":
            spec["binds"] = [
                f"{name}/frr.conf:/etc/frr/frr.conf",
                f"{name}/daemons:/etc/frr/daemons",
            ]
        elif kind == "lb" and f"{name}/start.sh" in files:
            spec["binds"] = [f"{name}:{CONF_DIR}:ro"]
        commands = setup_commands(topology, name, plan, routes)
        if f"{name}/start.sh" in files:
            commands.append(f"sh {CONF_DIR}/start.sh")
        spec["exec"] = commands
        nodes[name] = spec
    body = {"name": topology.name, "topology": {"nodes": nodes}}
    header = (
        f'# containerlab topology of anycast-ctl topology "{topology.name}"; rendered, do not edit'
        " (see README.md).\n"
        "# Images: set ANYCAST_FRR_IMAGE, ANYCAST_LB_IMAGE, ANYCAST_HOST_IMAGE to override the"
        " defaults.\n"
    )
    # One link a line, as people write them; node and interface names need no quoting rules
    # beyond JSON's (NodeName is [A-Za-z][A-Za-z0-9_-]*).
    links = "".join(
        f'  - endpoints: ["{link.a}:eth-{link.b}", "{link.b}:eth-{link.a}"]\n'
        for link in topology.links
    )
    return (
        header
        + yaml.safe_dump(body, sort_keys=False, default_flow_style=False, width=1000)
        + "  links:\n"
        + links
    )


def _readme(topology: Topology, plan: AddressPlan) -> str:
    backends = []
    for be in topology.backends:
        names = [v.tls_name for v in topology.vips if be.name in v.backends]
        backends.append(
            {
                "name": be.name,
                "listen": f"{plan.nodes[be.name].loopback_v4.ip}:{be.port}",
                "names": ", ".join(names) or "(serves no VIP)",
            }
        )
    hashing = []
    for router in topology.routers:
        h = topology.hashing_for(router.name)
        hashing.append(
            {
                "name": router.name,
                "asn": router.asn,
                "policy": h.policy,
                "fields": hex(h.fields),
                "seed": hex(h.seed),
            }
        )
    return (
        _env()
        .get_template("containerlab-README.md.j2")
        .render(
            topo=topology,
            plan=plan,
            images=IMAGES,
            backends=backends,
            hashing=hashing,
            clab_file=clab_file_name(topology),
            conf_dir=CONF_DIR,
            run_dir=RUN_DIR,
            state_dir=STATE_DIR,
        )
    )


def render_containerlab(
    topology: Topology, out_dir: Path, *, profile: str = "recommended"
) -> list[Path]:
    """Write the lab under `out_dir/<topology name>/`; returns the files written, sorted.

    Files already there that the rendering does not produce are left alone (remove the
    directory first to drop a node that left the topology).
    """
    lab_dir = Path(out_dir) / topology.name
    written = []
    for relative, text in containerlab_files(topology, profile=profile).items():
        path = lab_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if relative.endswith(".sh") else 0o644)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print("usage: python -m anycast_ctl.render.containerlab TOPOLOGY OUT_DIR", file=sys.stderr)
        return EXIT_USAGE
    try:
        topology = load_topology(args[0])
        paths = render_containerlab(topology, Path(args[1]))
    except UserError as exc:
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {len(paths)} files under {Path(args[1]) / topology.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
