"""`anycast-ctl drain|undrain|status`: talk to the running agent over its Unix socket.

Exit codes: 0 the agent did it; 2 bad input or refused (a bad VIP, not allowed, no agent
listening); 1 the agent answered but could not do it for another reason.
"""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path

import click

from anycast_ctl.agent.control import DEFAULT_SOCKET, request
from anycast_ctl.cli.params import Finite
from anycast_ctl.cli.status_table import format_status, status_shape_problems
from anycast_ctl.errors import Problem, UserError

_EPILOG = (
    "Exit codes: 0 done; 2 bad input, refused, or no agent listening; "
    "1 the agent answered but could not do it."
)


class AgentFailed(click.ClickException):
    """The agent answered ok=false for a reason other than our input: exit 1."""

    exit_code = 1

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


def socket_path(socket_opt: str | None, config: str | None) -> Path:
    """--socket, else control.socket of the node config: --config, or the installed one
    (/etc/anycast-ctl/node.yaml, what `render node` output becomes), so a bare `status` on a
    node finds the socket its agent listens on. Without any config: the default socket."""
    if socket_opt is not None:
        from pydantic import ValidationError

        from anycast_ctl.config.loading import problems_from_validation
        from anycast_ctl.config.node import Control

        if not socket_opt.strip():
            raise UserError.single("<argument>", "--socket", "must not be empty")
        try:  # the rules control.socket follows
            return Control(socket=Path(socket_opt).absolute()).socket
        except ValidationError as exc:
            problems = problems_from_validation("<argument>", exc, {"socket": socket_opt})
            raise UserError([Problem(p.source, "--socket", p.what) for p in problems]) from None
    from anycast_ctl.config import node

    if config:
        return node.load_node_config(config).control.socket
    if node.DEFAULT_CONFIG.exists():
        return node.load_node_config(node.DEFAULT_CONFIG).control.socket
    return DEFAULT_SOCKET


def normalize_vips(values: tuple[str, ...]) -> list[str]:
    """'192.0.2.10' -> '192.0.2.10/32'; every bad one is reported, not only the first."""
    vips, problems = [], []
    for value in values:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            problems.append(
                Problem("<argument>", value, f"not an IP address or host prefix: {exc}")
            )
            continue
        if net.prefixlen != net.max_prefixlen:
            problems.append(
                Problem("<argument>", value, f"a VIP is a host route (/{net.max_prefixlen})")
            )
            continue
        vips.append(str(net))
    if problems:
        raise UserError(problems)
    return vips


def call_agent(path: Path, payload: dict, timeout: float) -> dict:
    """Send the request; turn an ok=false answer into the right exit code."""
    response = request(path, payload, timeout)
    if not response["ok"]:
        error = str(response.get("error", "the agent gave no reason"))
        if response.get("kind") in ("refused", "bad_request"):
            raise UserError([Problem(str(path), "", error)])
        raise AgentFailed(error)
    return response


def _socket_options(func):
    """--config and --socket: which agent to talk to."""
    func = click.option(
        "--socket",
        "socket_opt",
        type=click.Path(dir_okay=False),
        help=(
            "The agent's control socket (default: control.socket of --config, else of"
            f" /etc/anycast-ctl/node.yaml if it exists, else {DEFAULT_SOCKET})."
        ),
    )(func)
    func = click.option(
        "--config",
        type=click.Path(dir_okay=False),
        help="Node config file: its control.socket is used (default /etc/anycast-ctl/node.yaml).",
    )(func)
    return func


def _connection_options(func):
    """The agent to talk to and how long to wait for its answer (drain has its own
    --timeout: the --wait bound)."""
    func = click.option(
        "--timeout",
        type=Finite(0.1, 3600),
        default=5.0,
        show_default=True,
        help="Seconds to wait for the agent (0.1 to 3600).",
    )(func)
    return _socket_options(func)


def _json_option(func):
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the agent's raw JSON response."
    )(func)


def _done(verb: str, vips: list[str], response: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(response, indent=2))
        return
    target = ", ".join(vips) if vips else "the whole node"
    message = response.get("message")
    click.echo(f"{verb} {target}" + (f": {message}" if message else ""))


_DRAIN_EPILOG = (
    "Exit codes: 0 done (with --wait: no connections left); 1 the agent answered but could"
    " not do it, or --wait timed out with connections left; 2 bad input, refused, or no agent"
    " listening."
)
DEFAULT_WAIT_S = 300.0
POLL_INTERVAL_S = 0.5
AGENT_TIMEOUT_S = 5.0  # each request to the agent; `drain --timeout` is the --wait bound


def _left_text(left: object) -> str:
    if not isinstance(left, int) or isinstance(left, bool):
        return "an unknown number of connections left"
    return f"{left} connection{'' if left == 1 else 's'} left"


def _left(response: dict) -> int | None:
    value = response.get("connections_left")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def wait_drained(path: Path, first: dict, limit: float) -> tuple[int | None, float, bool]:
    """Poll the agent's status until no connection to its VIPs is left or `limit` seconds
    pass: (connections left, seconds waited, timed out). Progress lines go to stderr."""
    start = time.monotonic()
    response, shown = first, object()
    while True:
        left, waited = _left(response), time.monotonic() - start
        if left == 0:
            return 0, waited, False
        if waited >= limit:
            return left, waited, True
        if left != shown:
            why = response.get("connections_error")
            click.echo(
                f"waiting: {_left_text(left)} after {waited:.1f} s" + (f" ({why})" if why else ""),
                err=True,
            )
            shown = left
        time.sleep(min(POLL_INTERVAL_S, max(0.0, limit - waited)))
        response = call_agent(path, {"op": "status", "connections": True}, AGENT_TIMEOUT_S)


@click.command(epilog=_DRAIN_EPILOG)
@click.argument("vips", nargs=-1)
@click.option(
    "--reason", required=True, help="Why (logged and shown in status with your user name)."
)
@click.option(
    "--wait",
    is_flag=True,
    help=(
        "After the drain, wait until no established connection to the node's VIPs is left"
        " (polled every 0.5 s; progress on stderr), so HAProxy can be stopped."
    ),
)
@click.option(
    "--timeout",
    type=Finite(0, 86400, low_open=True),
    default=None,
    help=f"With --wait: give up after this many seconds (default {DEFAULT_WAIT_S:g}; exit 1).",
)
@_socket_options
@_json_option
def drain(vips, reason, wait, timeout, config, socket_opt, as_json) -> None:
    """Take VIPS (default: every VIP of the node) out of service: the agent withdraws them
    and keeps them withdrawn, across restarts, until `undrain`. With --wait, return when the
    node's existing connections are gone (or at --timeout); --json then prints
    {"connections_left": N, "waited_s": T, "timed_out": bool}."""
    if not reason.strip():
        raise UserError.single("<argument>", "--reason", "must not be empty: say why you drain")
    if timeout is not None and not wait:
        raise UserError.single("<argument>", "--timeout", "only with --wait (how long to wait)")
    targets = normalize_vips(vips)
    path = socket_path(socket_opt, config)
    payload = {"op": "drain", "vips": targets, "reason": reason}
    if wait:
        payload["connections"] = True  # the first count comes with the drain's reply
    response = call_agent(path, payload, AGENT_TIMEOUT_S)
    if not wait:
        _done("drained", targets, response, as_json)
        return
    if not as_json:
        _done("drained", targets, response, False)
    limit = DEFAULT_WAIT_S if timeout is None else timeout
    left, waited, timed_out = wait_drained(path, response, limit)
    if as_json:
        summary = {"connections_left": left, "waited_s": round(waited, 3), "timed_out": timed_out}
        click.echo(json.dumps(summary))
    if timed_out:
        raise AgentFailed(f"timed out after {waited:.1f} s: {_left_text(left)}")
    if not as_json:
        click.echo(f"no connections left after {waited:.1f} s")


@click.command(epilog=_EPILOG)
@click.argument("vips", nargs=-1)
@click.option("--reason", default="", help="Why (optional; logged).")
@_connection_options
@_json_option
def undrain(vips, reason, config, socket_opt, timeout, as_json) -> None:
    """Put VIPS back in service (default: lift the whole-node drain; VIPs drained by name
    stay drained until undrained by name). Healthy VIPs are announced again."""
    targets = normalize_vips(vips)
    path = socket_path(socket_opt, config)
    payload = {"op": "undrain", "vips": targets}
    if reason:
        payload["reason"] = reason
    response = call_agent(path, payload, timeout)
    _done("undrained", targets, response, as_json)


@click.command(epilog=_EPILOG)
@_connection_options
@_json_option
def status(config, socket_opt, timeout, as_json) -> None:
    """Each VIP's state, announcement, drain (who/why) and last check results, and
    whether ExaBGP is alive."""
    path = socket_path(socket_opt, config)
    response = call_agent(path, {"op": "status", "connections": True}, timeout)
    problems = status_shape_problems(response)
    if problems:
        raise UserError(
            [Problem("<socket>", where, f"{what} (answer from {path})") for where, what in problems]
        )
    if as_json:
        click.echo(json.dumps(response, indent=2))
    else:
        click.echo(format_status(response, now=time.time()))
