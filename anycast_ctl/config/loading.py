"""Load YAML into pydantic models, turning every failure into path-precise `Problem`s.

Validation never has side effects: nothing here opens sockets or runs check commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

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


MAX_FILE_BYTES = 16 * 1024 * 1024  # a config or topology is a few KiB; /dev/zero is not one
# Nodes after expanding aliases: a real topology has a few thousand; "billion laughs" has 10**9.
MAX_YAML_NODES = 200_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _NoDuplicateKeys(yaml.constructor.SafeConstructor):
    """Refuses duplicate keys: a second `vips:` must not silently win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: dict[object, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *defaults` merges; keys written beside it override by design
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key; SafeConstructor reports it below
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class _StrictLoader(_NoDuplicateKeys, yaml.SafeLoader):
    pass


# libyaml's parser, when PyYAML has it, reads a 1,000-VIP config (the agent reads its config
# at every start) in half the CPU; the constructor, and so every check, is the same Python.
# It words syntax errors its own way: a file it refuses is parsed again by the Python parser,
# whose messages are the ones documented and tested.
if TYPE_CHECKING:
    _FastStrictLoader = _StrictLoader
else:
    _FastStrictLoader = (
        type("_FastStrictLoader", (_NoDuplicateKeys, yaml.CSafeLoader), {})
        if hasattr(yaml, "CSafeLoader")
        else _StrictLoader
    )


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes in the document with every alias expanded, counted without expanding it."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > 100:
            return limit + 1  # nesting this deep is not a config
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total += size(key, depth + 1) + size(value, depth + 1)
                if total > limit:
                    break
        sizes[id(node)] = total
        return total

    return size(root, 0)


def _decode(source: str, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and b"\x00" in data[:2]):
        raise UserError.single(source, "", "UTF-16 text: save the file as UTF-8")
    if b"\x00" in data:
        raise UserError.single(source, "", "a binary file (it contains NUL bytes), not YAML text")
    try:
        return data.decode("utf-8-sig")  # an editor's BOM is not part of the first key
    except UnicodeDecodeError as exc:
        raise UserError.single(
            source, "", f"not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8"
        ) from None


def read_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes, or a UserError saying plainly why not (missing, a directory, ...)."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise UserError.single(source, "", "file not found") from None
    except IsADirectoryError:
        raise UserError.single(source, "", "is a directory, not a file") from None
    except PermissionError:
        raise UserError.single(source, "", "permission denied: cannot read it") from None
    except OSError as exc:
        raise UserError.single(source, "", f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UserError.single(
            source, "", f"larger than {limit // (1024 * 1024)} MiB: not a config"
        )
    return data


def read_yaml(path: Path) -> object:
    source = str(path)
    text = _decode(source, read_bytes(path))
    if not text.strip():
        raise UserError.single(source, "", "empty file: expected a YAML mapping")
    try:
        return _parse(source, text, _FastStrictLoader)
    except _Refused:
        return _parse(source, text, _StrictLoader)


class _Refused(Exception):
    """The fast parser found a syntax error: the Python parser will say which."""


def _parse(source: str, text: str, loader_class: type[_StrictLoader]) -> object:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise UserError.single(source, "", "no YAML document in the file (only comments?)")
        if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise UserError.single(
                source,
                "",
                f"more than {MAX_YAML_NODES} values once aliases (*name) are expanded, "
                "or nested too deep: not a config",
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        if loader_class is not _StrictLoader:
            raise _Refused from None
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError.single(source, where, f"invalid YAML: {problem}") from None
    except RecursionError:
        raise UserError.single(source, "", "invalid YAML: nested too deep") from None
    finally:
        loader.dispose()


_KINDS = {list: "a list", str: "a single value (text)", int: "a number", float: "a number"}


def validate(model: type[M], data: object, source: str) -> M:
    if not isinstance(data, dict):
        found = _KINDS.get(type(data), type(data).__name__)
        raise UserError.single(
            source, "", f"expected a mapping (key: value lines) at the top level, found {found}"
        )
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
