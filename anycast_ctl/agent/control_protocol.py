"""The control socket's protocol, pure: request parsing, who may ask, the error replies.

One JSON object per line in each direction.
    request:  {"op": "drain" | "undrain" | "status", "vips": ["192.0.2.10/32"], "reason": "...",
               "connections": true}
              "vips" absent or empty = the whole node; "reason" is required for drain;
              "connections" (default false): count the established connections left to the
              node's VIPs for the reply (`connections_left`); asked by `status` and by
              `drain --wait`'s polls, not by scripts that poll the state.
    response: {"ok": true, ...payload} or {"ok": false, "error": "...", "kind": KIND}
              KIND is "refused" (caller not allowed), "bad_request" (the request is wrong) or
              "failed" (the agent could not do it); the CLI exits 2 for the first two, 1 otherwise.
The I/O (socket, SO_PEERCRED, user database) is in `control.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from anycast_ctl.config.common import host_prefix
from anycast_ctl.errors import Problem, UserError

MAX_REQUEST_BYTES = 64 * 1024
MAX_REASON_CHARS = 500
SOURCE = "<socket>"
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class Op(StrEnum):
    DRAIN = "drain"
    UNDRAIN = "undrain"
    STATUS = "status"


class ErrorKind(StrEnum):
    REFUSED = "refused"
    BAD_REQUEST = "bad_request"
    FAILED = "failed"


@dataclass(frozen=True)
class ControlRequest:
    op: Op
    vips: tuple[str, ...] = ()  # normalized host prefixes; empty = the whole node
    reason: str = ""
    connections: bool = False  # count the connections left to the VIPs for the reply

    @property
    def whole_node(self) -> bool:
        return not self.vips

    def describe(self) -> str:
        """For the audit log: what was asked, and why."""
        target = ",".join(self.vips) if self.vips else "whole-node"
        text = f"op={self.op.value} vips={target}"
        return f"{text} reason={self.reason!r}" if self.reason else text


@dataclass(frozen=True)
class PeerCred:
    """Who is on the other end of a connection (SO_PEERCRED + the user database)."""

    pid: int
    uid: int
    gid: int
    user: str  # the user name; the uid as a string when it has no passwd entry
    gids: frozenset[int]  # primary gid and the user's supplementary groups
    groups: frozenset[str]  # names of those groups that have one
    user_known: bool = True  # False: no passwd entry for the uid

    @property
    def who(self) -> str:
        return f"uid {self.uid} ({self.user if self.user_known else 'no such user'})"


def is_allowed(
    peer: PeerCred, allow_uids: Collection[int], allow_groups: Iterable[int | str]
) -> bool:
    """The uid is listed, or one of the peer's groups is listed by gid or by name."""
    if peer.uid in allow_uids:
        return True
    for entry in allow_groups:
        if isinstance(entry, int) and entry in peer.gids:
            return True
        if isinstance(entry, str) and entry in peer.groups:
            return True
    return False


def refusal(peer: PeerCred, op: str | None) -> str:
    action = op if op in {o.value for o in Op} else "use the control socket"
    return (
        f"{peer.who} is not allowed to {action}: "
        "add it to control.allow_uids or a group in control.allow_groups"
    )


def error_response(kind: ErrorKind, message: str) -> dict[str, object]:
    return {"ok": False, "error": message, "kind": kind.value}


def error_text(exc: UserError) -> str:
    """'vips[1]: ...; reason: ...' — the problems without the '<socket>' source."""
    return "; ".join(f"{p.where}: {p.what}" if p.where else p.what for p in exc.problems)


def _text(value: object, where: str, problems: list[Problem]) -> str | None:
    if not isinstance(value, str):
        problems.append(Problem(SOURCE, where, f"must be a string, not {type(value).__name__}"))
        return None
    if _CONTROL_CHARS.search(value):
        problems.append(
            Problem(SOURCE, where, "must not contain control characters (newlines, tabs, ...)")
        )
        return None
    if len(value) > MAX_REASON_CHARS:
        problems.append(
            Problem(
                SOURCE, where, f"too long ({len(value)} characters, at most {MAX_REASON_CHARS})"
            )
        )
        return None
    return value.strip()


def _vips(
    value: object, known_vips: Collection[str] | None, problems: list[Problem]
) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(
            Problem(SOURCE, "vips", f"must be a list of VIP addresses, not {type(value).__name__}")
        )
        return ()
    vips: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            problems.append(
                Problem(SOURCE, f"vips[{i}]", f"must be a string, not {type(item).__name__}")
            )
            continue
        try:
            prefix = host_prefix(item)
        except ValueError as exc:
            problems.append(Problem(SOURCE, f"vips[{i}]", str(exc)))
            continue
        if known_vips is not None and prefix not in known_vips:
            known = ", ".join(sorted(known_vips)) or "none"
            problems.append(
                Problem(
                    SOURCE, f"vips[{i}]", f"{prefix} is not a VIP of this node (known: {known})"
                )
            )
            continue
        if prefix not in vips:
            vips.append(prefix)
    return tuple(vips)


def parse_request(raw: bytes, known_vips: Collection[str] | None) -> ControlRequest:
    """One request line -> ControlRequest; anything wrong -> UserError naming each field.
    With known_vips=None any well-formed host prefix passes (the caller checks membership)."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise UserError.single(
            SOURCE, "", f"request too large ({len(raw)} bytes, at most {MAX_REQUEST_BYTES})"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError.single(SOURCE, "", "request is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise UserError.single(
            SOURCE, "", f"request is not JSON: {exc.msg} at column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise UserError.single(
            SOURCE, "", f"request must be a JSON object, not {type(data).__name__}"
        )

    problems = [
        Problem(SOURCE, key, "unknown field")
        for key in sorted(set(data) - {"op", "vips", "reason", "connections"})
    ]
    op_value = data.get("op")
    op = None
    if "op" not in data:
        problems.append(Problem(SOURCE, "op", "required field is missing"))
    elif op_value not in {o.value for o in Op}:
        problems.append(
            Problem(
                SOURCE, "op", f"must be one of {', '.join(o.value for o in Op)}, not {op_value!r}"
            )
        )
    else:
        op = Op(op_value)
    vips = _vips(data.get("vips"), known_vips, problems)
    reason = ""
    if "reason" in data:
        reason = _text(data["reason"], "reason", problems) or ""
    connections = data.get("connections", False)
    if not isinstance(connections, bool):
        problems.append(
            Problem(SOURCE, "connections", f"must be true or false, not {connections!r}")
        )
    if op is Op.DRAIN and not reason and not any(p.where == "reason" for p in problems):
        problems.append(
            Problem(
                SOURCE, "reason", "required for drain: say why (it is logged and shown in status)"
            )
        )
    if problems:
        raise UserError(problems)
    assert op is not None  # a missing or unknown op is one of the problems
    return ControlRequest(op=op, vips=vips, reason=reason, connections=connections is True)


def peek_op(raw: bytes) -> str | None:
    """The op of a request we will refuse anyway, for the log line; None if unreadable."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    op = data.get("op") if isinstance(data, dict) else None
    return op if isinstance(op, str) and op in {o.value for o in Op} else None
