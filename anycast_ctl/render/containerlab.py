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
from pathlib import Path

import jinja2
import yaml

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import EXIT_USAGE, UserError
from anycast_ctl.render import containerlab_nodes as cn
from anycast_ctl.render.containerlab_nodes import CONF_DIR, PKI_DIR, RUN_DIR, STATE_DIR
from anycast_ctl.render.hostnet import (
    Route,
    lb_sysctls,
    router_sysctls,
    setup_commands,
    static_routes,
)
from anycast_ctl.render.lb_layout import AS_ROOT
from anycast_ctl.render.node_files import agent_api, topology_files
from anycast_ctl.render.templating import environment

__all__ = [
    "CONF_DIR",
    "PKI_DIR",
    "RUN_DIR",
    "STATE_DIR",
    "containerlab_files",
    "render_containerlab",
]

# ExaBGP finds it in the LB image's PATH and runs `anycast-ctl agent run node.yaml`.
AGENT_PROGRAM = "anycast-ctl"
# Restarting a container would bring it back without the veth links containerlab attached and
# without its exec: lines; the supervisor inside restarts daemons, and a container that stops
# stays stopped where people see it. (containerlab's default for kind linux is `always`.)
RESTART_POLICY = "no"


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


# The images `make images` builds (images/*/Containerfile, docs/images.md).
IMAGES = (
    Image(
        "routers",
        ("router",),
        "ANYCAST_FRR_IMAGE",
        "anycast-ctl-router:latest",
        "FRR 8.4 (zebra, bgpd), iproute2, anycast-ctl-supervise",
    ),
    Image(
        "LB nodes",
        ("lb",),
        "ANYCAST_LB_IMAGE",
        "anycast-ctl-lb:latest",
        "HAProxy 2.6, ExaBGP 5.0, anycast-ctl, iproute2, anycast-ctl-supervise",
    ),
    Image(
        "backends, clients",
        ("backend", "client"),
        "ANYCAST_HOST_IMAGE",
        "anycast-ctl-host:latest",
        "anycast-ctl (TLS server, traffic tool), openssl, flock, iproute2, anycast-ctl-supervise",
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
    # The namespace lab's file map, with the paths inside the containers; zebra and bgpd each
    # read their part of frr.conf, so neither logs the other's commands as errors.
    rendered = topology_files(
        topology,
        run_dir=Path(str(RUN_DIR)),
        state_dir=Path(str(STATE_DIR)),
        conf_dir=lambda _node: CONF_DIR,
        api=agent_api([AGENT_PROGRAM]),
        profile=profile,
        frr_per_daemon=True,
        ca_file=PKI_DIR / "ca.pem",  # only TLS checks (certificates.tls_checks) read it
        run_as=AS_ROOT,  # the images have no anycast-ctl user: containers run as root
    )
    files = rendered.files | cn.node_files(topology, rendered.certificates)
    files[clab_file_name(topology)] = _clab_yaml(topology, plan, routes)
    files["README.md"] = _readme(topology, plan)
    return dict(sorted(files.items()))


def _clab_yaml(
    topology: Topology,
    plan: AddressPlan,
    routes: dict[str, tuple[Route, ...]],
) -> str:
    nodes: dict[str, dict[str, object]] = {}
    for name, kind in topology.kinds.items():
        spec: dict[str, object] = {
            "kind": "linux",
            "image": image_for(kind).reference,
            # No management network: routing is the lab's own, so a withdrawn VIP is
            # unreachable instead of leaving through a default route to the host.
            "network-mode": "none",
            "restart-policy": RESTART_POLICY,
            "cmd": cn.SUPERVISE_CMD,
            "binds": cn.binds(topology, name),
        }
        if kind == "router":
            # Set by the runtime when it creates the container (no exec, no privileges needed).
            spec["sysctls"] = dict(router_sysctls(topology, name))
        elif kind == "lb":
            spec["sysctls"] = dict(lb_sysctls(topology))
        spec["exec"] = setup_commands(topology, name, plan, routes, sysctls=False) + cn.exec_tail(
            topology, name
        )
        nodes[name] = spec
    body = {"name": topology.name, "topology": {"nodes": nodes}}
    header = (
        f'# containerlab topology of anycast-ctl topology "{topology.name}"; rendered, do not edit'
        " (see README.md).\n"
        "# Images: `make images` builds the defaults; ANYCAST_FRR_IMAGE, ANYCAST_LB_IMAGE and"
        " ANYCAST_HOST_IMAGE override them.\n"
        + "".join(f"# warning: {w}\n" for w in cn.warnings(topology))
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
        names = [n for v in topology.vips for n in v.tls_names_of(be.name)]
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
            pki_dir=PKI_DIR,
            warnings=cn.warnings(topology),
            supervise_cmd=cn.SUPERVISE_CMD,
            client=topology.clients[0].name if topology.clients else None,
            vip=topology.vips[0] if topology.vips else None,
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
    for warning in cn.warnings(topology):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {len(paths)} files under {Path(args[1]) / topology.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
