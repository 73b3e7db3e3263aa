"""Load YAML into pydantic models, turning every failure into path-precise `Problem`s.

Validation never has side effects: nothing here opens sockets or runs check commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from anycast_ctl.errors import Problem, UserError

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    """('vips', 1, 'checks', 0, 'timeout') -> 'vips[1].checks[0].timeout'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean_message(msg: str) -> str:
    # pydantic prefixes custom errors with "Value error, "; the prefix tells a person nothing.
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


_ABSENT = object()


def _child(node: object, part: int | str) -> object:
    """`node[part]` when the input has that key or index, else `_ABSENT`."""
    if isinstance(node, dict):
        return node.get(part, _ABSENT)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT


def user_path(loc: tuple[int | str, ...], data: object) -> tuple[int | str, ...]:
    """Keep only the parts of a pydantic location that the user wrote.

    Unions add branch names (a discriminator tag such as 'tcp', or 'function-after[...]') to
    the location. Walking the input alongside drops every part that is not a real key or index;
    the last part may be absent from the input (a missing field) and is kept.
    """
    kept: list[int | str] = []
    node = data
    for i, part in enumerate(loc):
        child = _child(node, part)
        if child is not _ABSENT:
            node = child
        elif i == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            pass  # a missing or unknown key: the user's field name
        else:
            continue
        kept.append(part)
    return tuple(kept)


def problems_from_validation(source: str, exc: ValidationError, data: object) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        msg = _clean_message(err["msg"])
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        problems.append(Problem(source, field_path(user_path(err["loc"], data)), msg))
    return problems


def read_yaml(path: Path) -> object:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError.single(source, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError.single(source, "", f"cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError.single(source, where, f"invalid YAML: {problem}") from None


def validate(model: type[M], data: object, source: str) -> M:
    if not isinstance(data, dict):
        raise UserError.single(source, "", "expected a mapping at the top level")
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        raise UserError(problems_from_validation(source, exc, data)) from None
    # Checks that span fields (references by name, loops...) live in `cross_check()` so each
    # problem keeps its own field path; a pydantic model validator could only report one.
    cross_check = getattr(obj, "cross_check", None)
    if cross_check is not None:
        problems = [Problem(source, where, what) for where, what in cross_check()]
        if problems:
            raise UserError(problems)
    return obj


def load_model(model: type[M], path: str | Path) -> M:
    path = Path(path)
    return validate(model, read_yaml(path), str(path))
