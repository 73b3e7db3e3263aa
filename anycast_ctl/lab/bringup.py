"""How `Lab.up` brings a topology up: topology -> file map (pure) -> written -> network built
-> daemons started. The convergence wait and the cleanup after a failure are `Lab.up`'s.

Everything here carries the lab's tag: namespaces `<tag>-<node>`, the daemons'
ANYCAST_CTL_LAB environment, files under /run/anycast-ctl/lab/<tag>/.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anycast_ctl.config.address_plan import AddressPlan
from anycast_ctl.config.node import ExabgpDialect
from anycast_ctl.config.topology import Topology, load_topology
from anycast_ctl.errors import UserError
from anycast_ctl.lab import state
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.net import build
from anycast_ctl.lab.net.cleanup import lab_pids, tag_namespaces
from anycast_ctl.lab.net.privilege import Identity
from anycast_ctl.lab.nodes import backends, frr, lb
from anycast_ctl.lab.nodes.common import lab_identity
from anycast_ctl.lab.nodes.files import write_node_files
from anycast_ctl.lab.nodes.pki import MIN_VALIDITY, VALIDITY
from anycast_ctl.render import yaml_text
from anycast_ctl.render.hostnet import static_routes
from anycast_ctl.render.lb_layout import AS_ROOT, RunAs
from anycast_ctl.render.node_config import EXABGP_DIALECT
from anycast_ctl.render.node_files import (
    CA_FILE,
    ApiFor,
    NodeFiles,
    lb_addresses,
    requires_client_certificates,
    topology_files,
)

TAG_PREFIX = "acx-"
LAB_FILE = "lab.json"
TOPOLOGY_FILE = "topology.yaml"

Say = Callable[[str], None]


class LabUpError(LabError):
    """`lab up` failed; everything it had created is already removed."""


def cert_validity(cert_days: float | None) -> dt.timedelta:
    """The lab certificates' validity: `cert_days` (at least MIN_VALIDITY), default VALIDITY."""
    if cert_days is None:
        return VALIDITY
    validity = dt.timedelta(days=cert_days)
    if not MIN_VALIDITY <= validity <= dt.timedelta(days=3650):
        raise UserError.single(
            "<lab>",
            "cert_days",
            f"{cert_days:g}: must lie in {MIN_VALIDITY / dt.timedelta(days=1):.4f}..3650"
            " (the certificates must outlive the bring-up)",
        )
    return validity


def tag_for(name: str) -> str:
    return state.check_name(TAG_PREFIX + state.check_name(name, "name"), "tag")


def tag_named(name: str, known: list[str]) -> str:
    """The tag of lab `name`; a name given as a tag (`acx-NAME`, as `ip netns list` shows the
    namespaces' prefix) is taken as the tag when such a lab is known and `acx-acx-NAME` is not."""
    tag = tag_for(name)
    if name.startswith(TAG_PREFIX) and tag not in known and name in known:
        return name
    return tag


def running_labs() -> list[str]:
    """Tags of labs started by `Lab.up` whose state is still there."""
    return [t for t in state.all_tags() if (state.state_dir(t) / LAB_FILE).exists()]


def topology_text(topology: Topology | str | Path) -> tuple[Topology, str]:
    """The topology and the text the lab keeps of it (for `Lab.attach`)."""
    if isinstance(topology, Topology):
        data = topology.model_dump(mode="json", exclude_unset=True)
        return topology, yaml_text.dump(data, sort_keys=False)
    return load_topology(topology), Path(topology).read_text()


def render(
    topology: Topology,
    tag: str,
    profile: str,
    api: ApiFor,
    exabgp: ExabgpDialect = EXABGP_DIALECT,
    run_as: RunAs = AS_ROOT,
) -> NodeFiles:
    """Every file the lab's nodes read, with the paths they have under the lab's state dir,
    for ExaBGP and the agent run as `run_as` (the lab's Identity.run_as).
    Pure: each UserError of the topology surfaces here, before anything exists."""
    return topology_files(
        topology,
        run_dir=state.state_dir(tag),
        conf_dir=lambda node: state.node_dir(tag, node),
        api=api,
        profile=profile,
        frr_per_daemon=True,
        ca_file=state.state_dir(tag) / CA_FILE,  # the lab's own CA, for TLS checks
        exabgp_dialect=exabgp,
        run_as=run_as,
    )


def refuse_if_running(tag: str, name: str) -> None:
    found = tag_namespaces(tag)
    pids = lab_pids(tag)
    directory = state.state_dir(tag)
    if found or pids or (directory / LAB_FILE).exists():
        if found:
            what = ", ".join(found[:3]) + (" ..." if len(found) > 3 else "")
        else:
            what = f"{len(pids)} processes" if pids else f"state in {directory}"
        raise LabUpError(
            f"lab {name!r} (tag {tag}) is already running ({what}); "
            f"take it down first: anycast-ctl lab down {name}"
        )


def write_meta(tag: str, extra: dict[str, Any]) -> None:
    path = state.state_dir(tag) / LAB_FILE
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta.update(extra)
    path.write_text(json.dumps(meta, indent=2) + "\n")


def start(
    tag: str,
    name: str,
    topo: Topology,
    plan: AddressPlan,
    rendered: NodeFiles,
    meta: dict[str, Any],
    text: str,
    say: Say,
    validity: dt.timedelta = VALIDITY,
    exabgp: ExabgpDialect = EXABGP_DIALECT,
    identity: Identity | None = None,
) -> None:
    """Write the file map, build the network, start every daemon (no convergence wait);
    ExaBGP and the agent as `identity` (the one `rendered` was rendered for)."""
    identity = identity or lab_identity(exabgp)
    with state.updating(tag):
        pass  # creates the state dir (and state.json) before anything else exists
    directory = state.state_dir(tag)
    (directory / TOPOLOGY_FILE).write_text(text)
    now = dt.datetime.now(dt.UTC)
    write_meta(tag, {**meta, "created": now.isoformat(timespec="seconds")})
    say(f"writing {len(rendered.files)} config files and {len(rendered.certificates)} certificates")
    write_node_files(directory, topo, rendered, name, now, validity, identity.gid)
    say(f"building {len(topo.kinds)} namespaces and {len(topo.links)} links")
    namespaces = build.build_network(tag, topo, plan)
    say(f"starting {len(topo.backends)} TLS backends")
    for backend in topo.backends:
        request = rendered.certificates[backend.name]
        listen = f"{plan.nodes[backend.name].loopback_v4.ip}:{backend.port}"
        backends.start_backend(
            tag,
            backend.name,
            namespaces[backend.name],
            listen,
            directory / request.cert,
            directory / request.key,
            proxy_from=lb_addresses(topo, plan),
            client_ca=(
                directory / CA_FILE if requires_client_certificates(topo, backend.name) else None
            ),
        )
    say(f"starting FRR on {len(topo.routers)} routers")
    frr.start_routers(tag, topo, namespaces)
    lbs = [node.name for node in topo.lbs if node.vips]
    say(f"starting HAProxy, bfdd, ExaBGP and the agent on {len(lbs)} LB nodes")
    routes = static_routes(topo, plan)
    for node in lbs:
        lb.start_route_keeper(tag, node, namespaces[node], routes.get(node, ()))
        lb.start_haproxy(tag, node, namespaces[node])
        lb.start_bfdd(tag, node, namespaces[node])
        lb.start_exabgp(tag, node, namespaces[node], exabgp, identity)
