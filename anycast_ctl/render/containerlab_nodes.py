"""What each containerlab node runs (pure): its programs file, its `exec:` lines, its PKI step.

Every image's command is `anycast-ctl-supervise /etc/anycast-ctl/programs.json` (PID 1; see
anycast_ctl/supervise.py): it waits until the last `exec:` line, `anycast-ctl-supervise start`,
by which time containerlab has attached the links and the earlier lines have set addresses and
routes, then starts the node's programs and restarts one that dies.

- routers: zebra, bfdd (BFD on) and bgpd, each reading its part of frr.conf (zebra.conf,
  bfdd.conf, bgpd.conf);
- LB nodes: HAProxy (master-worker, foreground), bfdd (BFD on; the image must have
  /var/run/frr owned by frr, as images/lb/Containerfile makes it) and ExaBGP, which runs the
  agent;
- backends: `pki.sh` makes the lab CA and every backend's certificate at deploy time (the first
  backend to take the lock issues all of them, the CA's key stays in memory and is gone
  afterwards), then anycast-ctl's TLS server;
- clients: nothing; the traffic tool runs through `docker exec` / `podman exec`.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from anycast_ctl.config.topology import Topology
from anycast_ctl.render.lb_layout import lb_paths
from anycast_ctl.render.node_files import CertRequest, lb_addresses, requires_client_certificates
from anycast_ctl.render.templating import environment

CONF_DIR = PurePosixPath("/etc/anycast-ctl")  # each node's own directory, mounted read-only
RUN_DIR = PurePosixPath("/run/anycast-ctl")  # sockets inside LB containers
STATE_DIR = PurePosixPath("/var/lib/anycast-ctl")  # drain state: kept when the agent restarts
# The lab's certificates: written by the backends at deploy time, read by clients. A directory
# of the lab on the host (`pki/`, git-ignored), so every container sees the same CA.
PKI_DIR = PurePosixPath("/var/lib/anycast-ctl/pki")
PROGRAMS = "programs.json"
SUPERVISE = "anycast-ctl-supervise"
SUPERVISE_CMD = f"{SUPERVISE} {CONF_DIR / PROGRAMS}"
START = f"{SUPERVISE} start"
FRR_CONF = PurePosixPath("/etc/frr/frr.conf")  # the integrated config, for vtysh
BACKEND_MODULE = "anycast_ctl.lab.programs.backend"  # anycast-ctl's TLS server (host image)


def _programs(items: list[tuple[str, list[str]]]) -> str:
    body = {"programs": [{"name": name, "argv": argv} for name, argv in items]}
    return json.dumps(body, indent=2) + "\n"


def _frr_daemon(name: str, *extra: str) -> tuple[str, list[str]]:
    # -A 127.0.0.1: vty only on loopback.
    return (name, [f"/usr/lib/frr/{name}", "-f", str(CONF_DIR / f"{name}.conf"), "-A", "127.0.0.1"])


def router_programs(bfd: bool = True) -> str:
    """zebra, bfdd (with BFD on) and bgpd, in the order the namespace lab starts them
    (lab/nodes/frr.DAEMON_ORDER: bgpd registers its BFD peers through zebra with bfdd)."""
    zebra = _frr_daemon("zebra")
    zebra[1].extend(["-s", "90000000"])  # a netlink buffer big enough for full ECMP tables
    daemons = [zebra, *([_frr_daemon("bfdd")] if bfd else []), _frr_daemon("bgpd")]
    return _programs(daemons)


def lb_programs(bfd: bool = True) -> str:
    """HAProxy, bfdd (with BFD on: alone, without zebra, as in the namespace lab) and ExaBGP."""
    programs = [("haproxy", ["haproxy", "-Ws", "-f", str(CONF_DIR / "haproxy.cfg")])]
    if bfd:
        programs.append(_frr_daemon("bfdd"))
    programs.append(
        (
            "exabgp",
            [
                "exabgp",
                "--env-file",
                str(CONF_DIR / "exabgp.env"),
                "server",
                str(CONF_DIR / "exabgp.conf"),
            ],
        )
    )
    return _programs(programs)


def backend_listen(topology: Topology, backend: str) -> str:
    plan = topology.address_plan()
    port = next(b.port for b in topology.backends if b.name == backend)
    return f"{plan.nodes[backend].loopback_v4.ip}:{port}"


def backend_programs(topology: Topology, backend: str) -> str:
    argv = ["python3", "-m", BACKEND_MODULE, "--name", backend]
    argv += ["--cert", str(PKI_DIR / f"{backend}.pem"), "--key", str(PKI_DIR / f"{backend}.key")]
    argv += ["--listen", backend_listen(topology, backend)]
    # PROXY v2 from the LB nodes only (haproxy.cfg's send-proxy-v2), mTLS where a VIP needs it
    plan = topology.address_plan()
    argv += [arg for address in lb_addresses(topology, plan) for arg in ("--proxy-from", address)]
    if requires_client_certificates(topology, backend):
        argv += ["--client-ca", str(PKI_DIR / "ca.pem")]
    return _programs([("tls-server", argv)])


def pki_script(topology: Topology, certificates: dict[str, CertRequest]) -> str:
    """The backends' `pki.sh` (the same on each): CA and every certificate, once per deploy."""
    certs = [
        {
            "name": req.node,
            "sans": ",".join(
                [f"DNS:{n}" for n in req.dns_names] + [f"IP:{a}" for a in req.ip_addresses]
            ),
        }
        for req in certificates.values()
        if not req.client  # client certificates are the namespace lab's (lab traffic)
    ]
    return (
        environment()
        .get_template("containerlab-pki.sh.j2")
        .render(topology=topology.name, pki_dir=PKI_DIR, certs=certs)
    )


def exec_tail(topology: Topology, node: str) -> list[str]:
    """`exec:` lines after the addresses and routes: what the node needs, then its programs."""
    kind = topology.kind(node)
    if kind == "lb":
        paths = lb_paths(Path(str(RUN_DIR)), node, Path(str(STATE_DIR)))
        return [f"mkdir -p {paths.directory} {paths.drain_file.parent}", START]
    if kind == "backend":
        return [f"sh {CONF_DIR / 'pki.sh'}", START]
    if kind == "router":
        return [START]
    return []


def binds(topology: Topology, node: str) -> list[str]:
    """Host path (relative to the topology file) : container path [:ro]; read-only unless the
    node writes there (backends write the lab's certificates)."""
    kind = topology.kind(node)
    out = [f"{node}:{CONF_DIR}:ro"]
    if kind == "router":
        out.append(f"{node}/frr.conf:{FRR_CONF}:ro")
    elif kind == "backend":
        out.append(f"pki:{PKI_DIR}")
    elif kind == "client" or (kind == "lb" and topology.certificates.tls_checks):
        out.append(f"pki:{PKI_DIR}:ro")  # an LB's TLS checks trust the lab CA (no key there)
    return out


def node_files(topology: Topology, certificates: dict[str, CertRequest]) -> dict[str, str]:
    """Each node's programs file, the backends' pki.sh (issuing `certificates`, the file map's
    requests), and the lab's (git-ignored) pki/ directory."""
    files: dict[str, str] = {}
    for node, kind in topology.kinds.items():
        if kind == "router":
            files[f"{node}/{PROGRAMS}"] = router_programs(topology.bfd.enabled)
        elif kind == "lb":
            files[f"{node}/{PROGRAMS}"] = lb_programs(topology.bfd.enabled)
        elif kind == "backend":
            files[f"{node}/{PROGRAMS}"] = backend_programs(topology, node)
            files[f"{node}/pki.sh"] = pki_script(topology, certificates)
        else:
            files[f"{node}/{PROGRAMS}"] = _programs([])
    # containerlab refuses a bind whose host path does not exist: the directory is rendered,
    # what the backends write into it is not committed.
    files["pki/.gitignore"] = (
        "# written at deploy time by the backends' pki.sh; never commit\n*\n!.gitignore\n"
    )
    return files


def warnings(topology: Topology) -> list[str]:
    """What the rendering cannot check and a deployment depends on."""
    out = []
    if topology.routers:
        out.append(
            "the routers' sysctls set net.ipv4.fib_multipath_hash_seed, which exists from Linux"
            " 6.11 only: on an older kernel the router containers fail to start, and without the"
            " seed the simulator's predictions would not match"
        )
    if topology.certificates.tls_checks:
        out.append(
            f"the LB nodes' TLS checks read {PKI_DIR}/ca.pem, which the backends' pki.sh writes"
            " at deploy time: an agent that starts before the file exists refuses its config"
            " (the check's ca_file) and has to be started again once the backends are up"
        )
    return out
