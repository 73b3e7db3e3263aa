"""Every file a topology's nodes need, as relative path -> text (pure): the one rendering that
both the namespace lab and the containerlab renderer write out.

    files = topology_files(topo, run_dir=Path("/run/x"), conf_dir=lambda node: PurePosixPath(...))
    files.files["lb1/exabgp.conf"]      # keys are "<node>/<file>" (and "pki/..." for certificates)
    files.certificates["be1"]           # what to issue; keys are random, so issuing is the writer's

Per kind of node:
- router: frr.conf (integrated), and with `frr_per_daemon` also zebra.conf, bgpd.conf and,
  with BFD on, bfdd.conf (`daemon_configs`), for daemons started with `-f` each, as the
  namespace lab does;
- LB node announcing a VIP: node.yaml (the agent), haproxy.cfg, exabgp.conf, exabgp.env,
  bfdd.conf (BFD on: render/bfdd.py) and whatever files its API process needs. The API
  process is a parameter (`api`): our agent by default, or another program such as ExaBGP's
  healthcheck; its argv goes into exabgp.conf as rendered, never patched in afterwards;
- backend: a certificate request (its TLS names and address), to be issued by a lab CA;
- client: a client-certificate request when some VIP has `client_certificates: required`.
`run_dir` is where LB nodes keep sockets, `state_dir` their drain state (`lb_layout.lb_paths`);
`conf_dir(node)` is the node's own directory as the node sees it (the paths written into its
configs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.node import Exabgp, ExabgpDialect
from anycast_ctl.config.topology import Topology
from anycast_ctl.render.bfdd import BFDD_CONF, render_bfdd
from anycast_ctl.render.exabgp import agent_argv, render_exabgp
from anycast_ctl.render.frr import render_frr
from anycast_ctl.render.haproxy import render_haproxy
from anycast_ctl.render.lb_layout import SERVICE, RunAs
from anycast_ctl.render.node_chance import TOPOLOGY_FILE, topology_yaml
from anycast_ctl.render.node_config import EXABGP_DIALECT, node_config, node_config_yaml
from anycast_ctl.render.plan import router_plans

NODE_YAML = "node.yaml"
PKI_DIR = "pki"
CA_FILE = f"{PKI_DIR}/ca.pem"


@dataclass(frozen=True)
class ApiProcess:
    """ExaBGP's API process on one LB node: its argv and the files it reads (name -> text,
    in the node's directory)."""

    argv: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)


# (LB node, its directory as it sees it) -> the API process ExaBGP runs there.
ApiFor = Callable[[str, PurePath], ApiProcess]


def agent_api(program: tuple[str, ...] | list[str]) -> ApiFor:
    """Our agent as the API process: `PROGRAM... agent run <conf_dir>/node.yaml`."""

    def api(lb: str, conf_dir: PurePath) -> ApiProcess:
        return ApiProcess(tuple(agent_argv(program, conf_dir / NODE_YAML)))

    return api


@dataclass(frozen=True)
class CertRequest:
    """A backend's server certificate: the TLS names of every VIP it serves, and its address."""

    node: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    cert: str  # key of the certificate in the file map
    key: str  # key of its private key
    client: bool = False  # a client certificate (for mTLS to `client_certificates: required`)


@dataclass
class NodeFiles:
    files: dict[str, str] = field(default_factory=dict)
    certificates: dict[str, CertRequest] = field(default_factory=dict)

    def update(self, other: NodeFiles) -> None:
        self.files.update(other.files)
        self.certificates.update(other.certificates)


_ZEBRA_ONLY = re.compile(r"^(no )?(zebra |ip forwarding|ipv6 forwarding)")
_VTYSH_ONLY = re.compile(r"^service integrated-vtysh-config")
# Top-level blocks (to their column-0 `exit`) that belong to one daemon only.
_BLOCKS = {"bgpd": re.compile(r"^router bgp "), "bfdd": re.compile(r"^bfd$")}


def daemon_configs(config_text: str) -> dict[str, str]:
    """Split an integrated frr.conf into zebra's, bgpd's and (when it has a `bfd` block)
    bfdd's parts, so no daemon logs another's commands as errors and a real config error
    stands out.

    Top-level `router bgp` blocks go to bgpd only, `bfd` blocks to bfdd only (each to its
    column-0 `exit`), zebra's own commands to zebra only; shared lines (hostname, log,
    prefix-lists, route-maps) to every daemon.
    """
    out: dict[str, list[str]] = {"zebra": [], "bgpd": []}
    if any(line == "bfd" for line in config_text.splitlines()):
        out["bfdd"] = []
    block: str | None = None
    for line in config_text.splitlines():
        if block is None:
            block = next((d for d, start in _BLOCKS.items() if start.match(line)), None)
        if block is not None:
            out[block].append(line)
            if line in ("exit", "end"):
                block = None
        elif _ZEBRA_ONLY.match(line):
            out["zebra"].append(line)
        elif not _VTYSH_ONLY.match(line):
            for lines in out.values():
                lines.append(line)
    return {daemon: "\n".join(lines) + "\n" for daemon, lines in out.items()}


def frr_files(router: str, config_text: str, *, per_daemon: bool) -> dict[str, str]:
    """frr.conf of one router, and with `per_daemon` each daemon's part beside it
    (zebra.conf, bgpd.conf, and bfdd.conf when the router runs BFD)."""
    files = {f"{router}/frr.conf": config_text}
    if per_daemon:
        files |= {f"{router}/{d}.conf": t for d, t in daemon_configs(config_text).items()}
    return files


def backend_names(topo: Topology) -> dict[str, list[str]]:
    """backend -> the TLS names it must present: those of every VIP it serves (sorted, unique)."""
    names: dict[str, set[str]] = {b.name: set() for b in topo.backends}
    for vip in topo.vips:
        for backend in vip.backends:
            names[backend].update(vip.tls_names_of(backend))  # with SNI routes, its routes
    return {b: sorted(n) for b, n in names.items()}


def node_files(
    topology: Topology,
    node: str,
    *,
    run_dir: Path,
    conf_dir: PurePath,
    api: ApiFor,
    profile: str = "recommended",
    frr_per_daemon: bool = False,
    plan: AddressPlan | None = None,
    state_dir: Path | None = None,
    ca_file: PurePath | None = None,
    exabgp_dialect: ExabgpDialect = EXABGP_DIALECT,
    run_as: RunAs = SERVICE,
) -> NodeFiles:
    """The files of one node (see the module's docstring); raises UserError for what the
    topology cannot be rendered into. `exabgp_dialect`: the ExaBGP version the LB nodes run;
    `run_as`: who runs ExaBGP and the agent (the stats socket's group, ExaBGP's user).
    `ca_file`: the lab CA as LB nodes see it, for their TLS checks (the topology's
    `certificates.ca_file` otherwise)."""
    plan = plan or topology.address_plan()
    kind = topology.kind(node)
    out = NodeFiles()
    if kind == "router":
        text = render_frr(router_plans(topology)[node])
        out.files = frr_files(node, text, per_daemon=frr_per_daemon)
    elif kind == "lb" and topology.lb(node).vips:
        config = node_config(
            topology,
            node,
            run_dir=run_dir,
            profile=profile,
            plan=plan,
            state_dir=state_dir,
            topology_file=conf_dir / TOPOLOGY_FILE,
            ca_file=ca_file,
        )
        config = config.model_copy(update={"exabgp": Exabgp(dialect=exabgp_dialect)})
        process = api(node, conf_dir)
        exabgp = render_exabgp(config, conf_dir / NODE_YAML, process.argv, run_as)
        bfdd = render_bfdd(config)
        out.files = {
            f"{node}/{NODE_YAML}": node_config_yaml(config, topology_name=topology.name),
            **({f"{node}/{BFDD_CONF}": bfdd} if bfdd is not None else {}),
            f"{node}/haproxy.cfg": render_haproxy(
                topology, node, run_dir=run_dir, profile=profile, plan=plan, run_as=run_as
            ),
            **{f"{node}/{name}": text for name, text in exabgp.items()},
            **{f"{node}/{name}": text for name, text in process.files.items()},
        }
        if config.second_chance.topology is not None:
            out.files[f"{node}/{TOPOLOGY_FILE}"] = topology_yaml(topology)
    elif kind == "backend":
        loopback = plan.nodes[node].loopback_v4
        out.certificates[node] = CertRequest(
            node=node,
            dns_names=tuple(backend_names(topology)[node]),
            ip_addresses=(str(loopback.ip),) if loopback is not None else (),
            cert=f"{PKI_DIR}/{node}.pem",
            key=f"{PKI_DIR}/{node}.key",
        )
    elif kind == "client" and any(v.client_certificates == "required" for v in topology.vips):
        out.certificates[node] = CertRequest(
            node=node,
            dns_names=(),
            ip_addresses=(),
            cert=client_cert_file(node),
            key=client_key_file(node),
            client=True,
        )
    return out


def client_cert_file(client: str) -> str:
    """Where a client's certificate is in the file map (issued when some VIP requires one)."""
    return f"{PKI_DIR}/client-{client}.pem"


def client_key_file(client: str) -> str:
    return f"{PKI_DIR}/client-{client}.key"


def topology_files(
    topology: Topology,
    *,
    run_dir: Path,
    conf_dir: Callable[[str], PurePath],
    api: ApiFor,
    profile: str = "recommended",
    frr_per_daemon: bool = False,
    state_dir: Path | None = None,
    ca_file: PurePath | None = None,
    exabgp_dialect: ExabgpDialect = EXABGP_DIALECT,
    run_as: RunAs = SERVICE,
) -> NodeFiles:
    """`node_files` of every node, in topology order."""
    plan = topology.address_plan()
    out = NodeFiles()
    for node in topology.kinds:
        out.update(
            node_files(
                topology,
                node,
                run_dir=run_dir,
                conf_dir=conf_dir(node),
                api=api,
                profile=profile,
                frr_per_daemon=frr_per_daemon,
                plan=plan,
                state_dir=state_dir,
                ca_file=ca_file,
                exabgp_dialect=exabgp_dialect,
                run_as=run_as,
            )
        )
    return out


def lb_addresses(topo: Topology, plan: AddressPlan) -> list[str]:
    """Every address of every LB node: the only sources a backend accepts (PROXY v2 from them)."""
    out = []
    for lb in topo.lbs:
        node = plan.nodes[lb.name]
        for address in (node.loopback_v4, node.loopback_v6):
            if address is not None:
                out.append(str(address.ip))
        for iface in node.interfaces:
            out += [str(a.ip) for a in (iface.ipv4, iface.ipv6) if a is not None]
    return out


def requires_client_certificates(topo: Topology, backend: str) -> bool:
    """Whether the backend serves `client_certificates: required` VIPs (the topology's checks
    make every VIP of one backend agree)."""
    return any(
        vip.client_certificates == "required" for vip in topo.vips if backend in vip.backends
    )
