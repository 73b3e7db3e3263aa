"""`lab status`: one JSON-able view of a running lab (namespaces, daemons, routers, agents)."""

from __future__ import annotations

from typing import Any

from anycast_ctl.errors import UserError
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.net import netns
from anycast_ctl.lab.observe.expect import router_problems


def lab_status(lab: LabHandle) -> dict[str, Any]:
    """Everything `lab status` shows, JSON-able: namespaces, daemons, routers, agents.

    Each part that cannot be read says why instead of failing all.
    """
    present = set(netns.list_namespaces())
    out: dict[str, Any] = {
        "name": lab.name,
        "tag": lab.tag,
        "topology": lab.topology.name,
        "namespaces": {node: ns in present for node, ns in lab.namespaces.items()},
        "daemons": {
            node: {
                name: {
                    "pid": d.pid,
                    "running": d.running(),
                    "log": str(d.log_path) if d.log_path else None,
                }
                for name, d in sorted(ds.items())
            }
            for node, ds in lab.daemons().items()
        },
        "routers": {},
        "agents": {},
        "problems": [],
    }
    for router in lab.topology.routers:
        try:
            view = lab.router_view(router.name)
        except LabError as exc:
            out["routers"][router.name] = {"error": str(exc)}
            out["problems"].append(f"{router.name}: {exc}")
            continue
        out["routers"][router.name] = {"sessions": view.sessions, "fib": view.fib}
        out["problems"] += router_problems(lab.topology, view)
    for lb in lab.topology.lbs:
        if not lb.vips:
            continue
        try:
            out["agents"][lb.name] = lab.agent_request(lb.name, {"op": "status"})
        except UserError as exc:
            out["agents"][lb.name] = {"ok": False, "error": "; ".join(exc.lines())}
    out["converged"] = not out["problems"]
    return out
