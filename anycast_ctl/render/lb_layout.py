"""What an LB node's agent config and its haproxy.cfg must agree on (pure).

Both renderers take their names, paths and check speeds from here, so the agent always
watches the stats socket HAProxy opens, the frontend and backend HAProxy defines, and checks
at a pace matched to HAProxy's own health checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from anycast_ctl.config.node import FlapDamping, Timing
from anycast_ctl.errors import UserError

if TYPE_CHECKING:  # the agent imports this module's layout, not the topology's models
    from anycast_ctl.config.topology import Topology, Vip

Profile = Literal["recommended", "conservative"]
PROFILES: tuple[str, ...] = get_args(Profile)

# GTSM (RFC 5082) on every router-LB session, rendered on both ends: FRR's `ttl-security hops`
# and ExaBGP's outgoing-ttl 255 / incoming-ttl 255. An LB is linked to its routers directly,
# so anything that crossed a router on its way (a spoofed OPEN from farther away) is dropped.
LB_SESSION_HOPS = 1


@dataclass(frozen=True)
class RunAs:
    """Who ExaBGP and the agent run as, and the group that may use HAProxy's stats socket.

    The unit (docs/systemd/anycast-exabgp.service) and the lab start ExaBGP as SERVICE with
    CAP_NET_ADMIN alone; ExaBGP's `daemon.user` names the same user, so an ExaBGP started as
    root by mistake drops to it too. `group` None: the socket is HAProxy's user's only.
    """

    user: str
    group: str | None


SERVICE_USER = "anycast-ctl"  # docs/systemd/anycast-ctl.sysusers.conf
SERVICE = RunAs(user=SERVICE_USER, group=SERVICE_USER)
# Containers (render/containerlab.py) run everything as root, as their images have no such user.
AS_ROOT = RunAs(user="root", group=None)

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class CheckProfile:
    """How fast the agent and HAProxy notice a failure."""

    agent: Timing
    damping: FlapDamping  # the agent's flap damping
    # HAProxy's server checks (`inter`, `fastinter`, `downinter` all equal: one pace).
    haproxy_inter_ms: int
    haproxy_rise: int
    haproxy_fall: int


CHECK_PROFILES: dict[str, CheckProfile] = {
    # For the lab's aim (a HAProxy crash out of every FIB in < 300 ms p99): a dead HAProxy is a
    # hard failure (socket refused) and is withdrawn on the first failed probe, at most one
    # 100 ms interval after the crash; ExaBGP to FIB adds 70-140 ms here (DESIGN.md). Soft
    # failures withdraw when 7 of the last 8 probes failed (0.7 s of an outage, 0.85-0.95 s to
    # the FIB), so a service that answers 5 or 10 % of probes late stays in (0 withdrawals in
    # 10,000 probes, as tests/unit/test_fsm_flaps.py and bench/bench_flaps.py measure; 2 in
    # a row gave 25 and 89), while one that fails most probes still goes. Recovery
    # needs 3 OKs (300 ms). Damping: a VIP withdrawn 3 times within a few seconds (a crash
    # loop) stays out until its penalty decays (half-life 5 s, at most 30 s).
    # HAProxy marks a backend down after 2 x 100 ms.
    "recommended": CheckProfile(
        agent=Timing(interval=0.1, timeout=0.08, rise=3, fall=7, window=8),
        damping=FlapDamping(half_life=5.0, max_suppress=30.0),
        haproxy_inter_ms=100,
        haproxy_rise=2,
        haproxy_fall=2,
    ),
    # The agent's and HAProxy's own defaults: fewer probes for WANs and busy hosts.
    "conservative": CheckProfile(
        agent=Timing(),
        damping=FlapDamping(),
        haproxy_inter_ms=2000,
        haproxy_rise=2,
        haproxy_fall=3,
    ),
}


def check_profile(profile: str) -> CheckProfile:
    try:
        return CHECK_PROFILES[profile]
    except KeyError:
        raise UserError.single(
            "<argument>", "profile", f"unknown profile {profile!r} (known: {', '.join(PROFILES)})"
        ) from None


@dataclass(frozen=True)
class LbPaths:
    """Files of one LB node: sockets under `<run_dir>/<node>/`, the drain state under
    `<state_dir>/<node>/` (a directory reboots and restarts keep, unlike /run)."""

    directory: Path
    control_socket: Path  # the agent's control socket (drain / undrain / status)
    drain_file: Path  # the agent's persisted drain state
    haproxy_socket: Path  # HAProxy's stats socket (admin level), read by the agent's check
    haproxy_pid: Path


DEFAULT_RUN_DIR = Path("/run/anycast-ctl")  # the unit's RuntimeDirectory=
DEFAULT_STATE_DIR = Path("/var/lib/anycast-ctl")  # the unit's StateDirectory=


def lb_paths(run_dir: Path, node: str, state_dir: Path | None = None) -> LbPaths:
    """`state_dir` None keeps the drain state beside the sockets (a throwaway lab's files)."""
    directory = Path(run_dir) / node
    paths = LbPaths(
        directory=directory,
        control_socket=directory / "agent.sock",
        drain_file=Path(state_dir or run_dir) / node / "drain.json",
        haproxy_socket=directory / "haproxy.sock",
        haproxy_pid=directory / "haproxy.pid",
    )
    for sock in (paths.control_socket, paths.haproxy_socket):
        if len(str(sock).encode()) > MAX_SOCKET_PATH:
            raise UserError.single(
                "<argument>",
                "run_dir",
                f"{sock} is longer than the {MAX_SOCKET_PATH} bytes a unix socket path may have; "
                "choose a shorter run directory",
            )
    return paths


def frontend_name(vip: str) -> str:
    """HAProxy frontend of a VIP (VIP names are valid HAProxy proxy names)."""
    return f"vip-{vip}"


def backend_name(vip: str) -> str:
    """HAProxy backend (server pool) of a VIP."""
    return f"pool-{vip}"


@dataclass(frozen=True)
class ProxyGroup:
    """VIPs of one LB node served by one HAProxy frontend and one server pool.

    VIPs share a group when they share the port, the address family, the exact list of
    backends and the edge policy (edge_policy.py: one frontend enforces one policy): one
    frontend binds all their addresses, one backend holds the pool. So 1,000
    VIPs of one service cost one frontend, one pool and one set of server checks, and the
    agent checks the group once for all its VIPs. Named after the group's first VIP, so a
    node with one VIP per service keeps the names `vip-<name>` / `pool-<name>`.
    """

    name: str  # the first VIP's name
    frontend: str
    backend: str
    port: int
    backends: tuple[str, ...]
    vips: tuple[Vip, ...]  # in the LB's order


def proxy_groups(topology: Topology, lb: str) -> list[ProxyGroup]:
    """The LB's VIPs grouped by (port, family, backends, policy), groups in order of first VIP."""
    members: dict[tuple[int, int, tuple[str, ...], str], list[Vip]] = {}
    for name in topology.lb(lb).vips:
        vip = topology.vip(name)
        key = (vip.port, vip.version, tuple(vip.backends), vip.policy_key())
        members.setdefault(key, []).append(vip)
    return [
        ProxyGroup(
            name=vips[0].name,
            frontend=frontend_name(vips[0].name),
            backend=backend_name(vips[0].name),
            port=port,
            backends=backends,
            vips=tuple(vips),
        )
        for (port, _, backends, _), vips in members.items()
    ]
