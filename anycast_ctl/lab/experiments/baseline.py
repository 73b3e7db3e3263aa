"""The baseline: ExaBGP's own healthcheck (`python -m exabgp healthcheck`, ExaBGP 5.0.15) in
place of our agent as an LB node's ExaBGP API process.

The healthcheck reads its options from a file (`--config FILE`, one `option = value` per
line), which keeps the check command out of ExaBGP's `run` line and its quoting rules.

What its options mean, read from exabgp/application/healthcheck.py (5.0.15):
- defaults: --interval 5 (seconds between checks while UP or DOWN), --fast-interval 1
  (between checks while RISING or FALLING), --rise 3, --fall 3, --timeout 5. The timeout is
  an integer number of seconds and 0 means none, so 1 s is its floor: the fast preset bounds
  its probe with coreutils `timeout` instead.
- without --withdraw-on-down a failed service stays announced with a worse MED (1000 vs 100).
  Our LB nodes each have their own ASN, and BGP compares MED only between paths from the same
  neighbour AS, so the router keeps the failed node in its ECMP set for ever. Both presets
  therefore add --withdraw-on-down: it is the least an anycast operator must set.
- the first check decides nothing: INIT -> RISING/FALLING, then `rise`/`fall` checks
  `fast-interval` apart. A failure is acted on after interval + (fall - 1) x fast-interval.
- --disable FILE: while FILE exists the service is DISABLED (withdrawn with --withdraw-on-down),
  checked once per iteration: the healthcheck's way to drain a node.
- it adds the VIPs to lo at start (ip-setup, needs root: the lab's ExaBGP runs as root) and
  removes them only on SIGTERM; it re-announces on every iteration unless --debounce.

The check is a TCP connect to every VIP of the node through bash's /dev/tcp: what an operator
would write for a TCP-mode HAProxy without an HTTP monitor URI. It is the same path as our
agent's `tcp` check; the agent adds HAProxy's runtime API, which the baseline has no
equivalent for (a SIGSTOPped HAProxy still completes TCP handshakes from its listen backlog).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath

from anycast_ctl.config.topology import Topology
from anycast_ctl.errors import UserError
from anycast_ctl.render.node_files import ApiFor, ApiProcess

CONFIG_FILE = "healthcheck.conf"
DISABLE_FILE = "healthcheck.disable"


class Implementation(StrEnum):
    """What decides an LB node's announcements."""

    ANYCAST = "anycast"  # our agent, with the lab's check profile
    EXABGP_DEFAULT = "exabgp-default"  # ExaBGP healthcheck, its default timings
    EXABGP_FAST = "exabgp-fast"  # ExaBGP healthcheck, the fastest settings we call sensible


@dataclass(frozen=True)
class HealthcheckSettings:
    interval: float
    fast_interval: float
    rise: int
    fall: int
    timeout: int  # the healthcheck's own (integer seconds, >= 1)
    probe_timeout: float | None  # coreutils `timeout` around the probe itself, or None


SETTINGS: dict[Implementation, HealthcheckSettings] = {
    Implementation.EXABGP_DEFAULT: HealthcheckSettings(
        interval=5, fast_interval=1, rise=3, fall=3, timeout=5, probe_timeout=None
    ),
    # The same pace as the agent's "recommended" profile (render/lb_layout.py): a probe every
    # 100 ms bounded at 80 ms, 2 failures to withdraw, 3 successes to return. Faster would be a
    # fall of 1, which withdraws on any single lost probe: not sensible for a healthy service.
    Implementation.EXABGP_FAST: HealthcheckSettings(
        interval=0.1, fast_interval=0.1, rise=3, fall=2, timeout=1, probe_timeout=0.08
    ),
}


@dataclass(frozen=True)
class Target:
    address: str  # "192.0.2.10/32"
    ip: str
    port: int


def _plain(value: str, what: str) -> str:
    # One option per line in the healthcheck's config file: a newline would start another one.
    if any(ch in value for ch in "\n\r\0'\"\\"):
        raise UserError.single(
            "<baseline>",
            what,
            f"{value!r}: quotes, backslashes and control characters are not allowed",
        )
    return value


def probe_command(targets: list[Target], probe_timeout: float | None) -> str:
    """A shell command that succeeds when a TCP connect to every target succeeds."""
    if not targets:
        raise UserError.single("<baseline>", "vips", "an LB node with no VIP has nothing to check")
    bound = f"timeout {probe_timeout:g} " if probe_timeout else ""
    probes = [f"{bound}bash -c '</dev/tcp/{_plain(t.ip, 'vip')}/{int(t.port)}'" for t in targets]
    return " && ".join(probes)


def healthcheck_config(
    name: str,
    targets: list[Target],
    settings: HealthcheckSettings,
    disable_file: PurePath,
) -> str:
    """The healthcheck's config file (read with --config): announce every target's address
    while the probe succeeds, withdraw it otherwise or while `disable_file` exists."""
    lines = [
        f"# ExaBGP healthcheck of LB node {name} (anycast-ctl lab baseline)",
        f"name = {_plain(name, 'name')}",
        "no-syslog",
        f"interval = {settings.interval:g}",
        f"fast-interval = {settings.fast_interval:g}",
        f"rise = {settings.rise}",
        f"fall = {settings.fall}",
        f"timeout = {settings.timeout}",
        f"command = {probe_command(targets, settings.probe_timeout)}",
        f"disable = {_plain(str(disable_file), 'disable_file')}",
        "withdraw-on-down",
    ]
    lines += [f"ip = {_plain(t.address, 'vip')}" for t in targets]
    return "\n".join(lines) + "\n"


def healthcheck_argv(config_file: PurePath, python: str = sys.executable) -> list[str]:
    """ExaBGP's API process line: the healthcheck with its options from `config_file`."""
    return [python, "-m", "exabgp", "healthcheck", "--config", str(config_file)]


def lb_targets(topology: Topology, lb: str) -> list[Target]:
    vips = [topology.vip(name) for name in topology.lb(lb).vips]
    return [Target(address=str(v.address), ip=str(v.ip), port=v.port) for v in vips]


def config_path(node_dir: PurePath) -> PurePath:
    return node_dir / CONFIG_FILE


def disable_path(node_dir: Path) -> Path:
    """Create it to drain the node, remove it to undrain (the healthcheck's --disable)."""
    return node_dir / DISABLE_FILE


def api_for(implementation: Implementation | str, topology: Topology) -> ApiFor | None:
    """For `Lab.up(..., api=...)` and `lab.start_exabgp(lb, api)`: None for our agent (the
    lab's default); for a baseline, the healthcheck as ExaBGP's API process, with the
    healthcheck.conf it reads rendered into the LB's directory."""
    impl = Implementation(implementation)
    if impl is Implementation.ANYCAST:
        return None

    def api(lb: str, conf_dir: PurePath) -> ApiProcess:
        text = lb_healthcheck_config(impl, topology, lb, conf_dir)
        return ApiProcess(tuple(healthcheck_argv(config_path(conf_dir))), {CONFIG_FILE: text})

    return api


def lb_healthcheck_config(
    implementation: Implementation, topology: Topology, lb: str, node_dir: PurePath
) -> str:
    """The healthcheck.conf a baseline gives LB node `lb` (its files live in `node_dir`)."""
    settings = SETTINGS[Implementation(implementation)]
    return healthcheck_config(lb, lb_targets(topology, lb), settings, node_dir / DISABLE_FILE)


def detection_bound(settings: HealthcheckSettings) -> float:
    """Worst case from a failure to the healthcheck's withdraw, before BGP: one interval for
    the next check, then fall-1 fast intervals, each check taking up to its timeout."""
    probe = settings.probe_timeout or settings.timeout
    return settings.interval + (settings.fall - 1) * settings.fast_interval + settings.fall * probe
