"""A node config -> the exabgp.conf and exabgp.env that run the agent inside ExaBGP. Pure.

The environment is chosen for failing closed (measured with ExaBGP 5.0.15; docs/exabgp.md):
- api.respawn = true: with respawn off, ExaBGP just forgets a dead API process and its routes
  stay announced for good; with it on, the new agent withdraws everything before its first
  check, and a sixth death within about a minute makes ExaBGP exit (sessions close).
- api.terminate = true: an agent that cannot even be started makes ExaBGP exit.
- api.ack = true: the agent matches one `done`/`error` to every command it sends.
- api.cli = false: no named pipes and no extra API process for `exabgp cli`.
- daemon.user = anycast-ctl: ExaBGP is started as that user with CAP_NET_ADMIN alone (the unit's
  AmbientCapabilities=, the lab's setpriv), which its child the agent inherits for the VIPs on
  the loopback; an ExaBGP started as root by mistake drops to that user (without capabilities,
  so the agent fails to add its VIPs and nothing is announced). Containers run it as root.
- tcp.bind empty: ExaBGP only connects out to its routers and never listens (no port 179).
The env differs between 4.2 and 5.0 only in the command that starts ExaBGP (`exabgp_argv`);
the node config's `exabgp.dialect` says which one runs. The agent's own lifeline
(anycast_ctl.agent.lifeline) stops ExaBGP when the agent dies or hangs.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from anycast_ctl.agent.exabgp import DIALECTS, announce_line, carriers
from anycast_ctl.config.node import NodeConfig
from anycast_ctl.errors import Problem, UserError
from anycast_ctl.render.lb_layout import SERVICE, RunAs

if TYPE_CHECKING:
    import jinja2

PROCESS_NAME = "anycast-agent"

# ExaBGP's `run` splits on whitespace and has no quoting we could rely on for every version.
_RUN_WORD = re.compile(r"^[A-Za-z0-9_./:@%+=,-]+$")

ENV_TEMPLATE = """\
# {node}: ExaBGP {version} environment rendered by `anycast-ctl render exabgp`; edits are
# overwritten. Start: {start}

[exabgp.api]
# one `done`/`error` per command: the agent waits for it
ack = true
# a dead agent is restarted (and withdraws everything first); six deaths a minute stop ExaBGP.
# With respawn off, ExaBGP would keep announcing a dead agent's routes.
respawn = true
# an agent that cannot be started at all stops ExaBGP, closing its sessions
terminate = true
# no named pipes, no extra API process for `exabgp cli`
cli = false
encoder = json

[exabgp.daemon]
# Start ExaBGP as this user with CAP_NET_ADMIN alone (the agent, its child, inherits both: the
# VIPs on the loopback). Started as root, ExaBGP drops to this user (and so to no capability).
user = '{user}'
daemonize = false
pid = ''

[exabgp.tcp]
# no address: ExaBGP connects out to its routers and never listens (nothing binds port 179)
bind = ''

[exabgp.log]
destination = 'stderr'
level = INFO
"""


def _environment() -> jinja2.Environment:
    # Imported here: the agent validates its config with exabgp_problems() at every start
    # and reload, and must not pay for jinja2 (~1.5 MiB) to do so.
    from anycast_ctl.render.templating import environment

    return environment()


def _version(address: str) -> int:
    return ipaddress.ip_interface(address).version


def exabgp_argv(program: str, version: str, env: PurePath, conf: PurePath) -> list[str]:
    """The command line that starts ExaBGP `version` (a dialect) with these env and conf files.
    4.2 has no subcommands, and takes its env file only as an absolute path (a relative one is
    ignored: it then runs with the defaults, as user nobody; docs/exabgp.md)."""
    if version == "4.2":
        return [program, "--env", str(env), str(conf)]
    if version == "5.0":
        return [program, "--env-file", str(env), "server", str(conf)]
    raise ValueError(f"unknown ExaBGP version {version!r} (known: {', '.join(DIALECTS)})")


def exabgp_problems(config: NodeConfig) -> list[tuple[str, str]]:
    """What in a valid node config ExaBGP cannot carry out, as (field path, message)."""
    problems = []
    for i, vip in enumerate(config.vips):
        if not carriers(vip, config.bgp):
            problems.append(
                (
                    f"vips[{i}].address",
                    f"no neighbor of IPv{_version(vip.address)} to announce it to "
                    "(add one, or give the VIP an explicit next_hop)",
                )
            )
            continue
        try:
            announce_line(vip, config.bgp, config.exabgp.dialect, graceful_shutdown=True)
        except ValueError as exc:
            problems.append((f"vips[{i}]", str(exc)))
    return problems


GTSM_TTL = 255  # RFC 5082: a GTSM speaker always sends with the maximum TTL


def gtsm_minimum_ttl(hops: int | None) -> int | None:
    """The lowest TTL accepted from a peer at most `hops` away (FRR's `ttl-security hops`)."""
    return None if hops is None else GTSM_TTL + 1 - hops


def agent_argv(program: Sequence[str], config_path: PurePath) -> list[str]:
    """The API process line that runs our agent: `PROGRAM... agent run CONFIG`."""
    return [*program, "agent", "run", str(config_path)]


def _run_line(api_argv: Sequence[str]) -> str:
    bad = [w for w in api_argv if not _RUN_WORD.match(w)]
    if bad or not api_argv:
        raise UserError.single(
            "<argument>",
            "api-command",
            f"ExaBGP cannot run words with spaces or special characters: {bad or list(api_argv)}",
        )
    return " ".join(api_argv)


def _neighbors(config: NodeConfig) -> list[dict[str, object]]:
    rendered = []
    for neighbor in config.bgp.neighbors:
        carried = [vip for vip in config.vips if neighbor in carriers(vip, config.bgp)]
        versions = {_version(vip.address) for vip in carried} or {_version(neighbor.address)}
        password = neighbor.md5_password
        rendered.append(
            {
                "address": neighbor.address,
                "local_address": neighbor.local_address,
                "peer_as": neighbor.peer_as,
                "hold_time": neighbor.hold_time,
                "md5_base64": base64.b64encode(password.encode()).decode() if password else None,
                "incoming_ttl": gtsm_minimum_ttl(neighbor.ttl_security_hops),
                "add_path": any(vip.path_id is not None for vip in carried),
                "families": [f"ipv{v}" for v in sorted(versions)],
            }
        )
    return rendered


def render_exabgp(
    config: NodeConfig, config_path: PurePath, api_argv: Sequence[str], run_as: RunAs = SERVICE
) -> dict[str, str]:
    """{'exabgp.conf': ..., 'exabgp.env': ...} for this node, for the ExaBGP version its
    `exabgp.dialect` names, run as `run_as.user`.

    ExaBGP runs `api_argv` as its API process (our agent: `agent_argv(program, config_path)`;
    the lab's baseline: ExaBGP's healthcheck). Each word must be plain: ExaBGP splits `run`
    on whitespace.
    """
    problems = exabgp_problems(config)
    if problems:
        raise UserError([Problem(str(config_path), where, what) for where, what in problems])
    conf = (
        _environment()
        .get_template("exabgp.conf.j2")
        .render(
            node=config.node,
            config_path=config_path,
            process=PROCESS_NAME,
            run=_run_line(api_argv),
            router_id=config.bgp.router_id,
            local_as=config.bgp.local_as,
            neighbors=_neighbors(config),
        )
    )
    version = config.exabgp.dialect
    here = PurePath("DIR")  # where both files are; ExaBGP 4.2 needs it absolute
    start = " ".join(exabgp_argv("exabgp", version, here / "exabgp.env", here / "exabgp.conf"))
    env = ENV_TEMPLATE.format(node=config.node, version=version, start=start, user=run_as.user)
    return {"exabgp.conf": conf, "exabgp.env": env}
