"""Bounded polling for lab assertions (never a bare sleep), and partial JSON comparison.

`wait_for` is FRR topotests' run_and_expect in one function: call until truthy or the deadline,
and when the deadline passes say what was last seen. `json_mismatch` compares only the keys an
assertion cares about, like topotests' json_cmp.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    what: str | None = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Return predicate()'s first truthy value; raise TimeoutError with the last value seen.

    Exceptions listed in `ignore` count as "not yet" (e.g. a daemon whose socket is not up);
    the last one is quoted in the timeout message.
    """
    deadline = time.monotonic() + timeout
    label = what or getattr(predicate, "__name__", repr(predicate))
    while True:
        try:
            last: Any = predicate()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"{label}: not satisfied within {timeout:g}s; last observed: {last!r}"
            )
        time.sleep(min(interval, remaining))


def json_mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """None when every key/value of `expected` is present in `actual` (recursively).

    Dicts match on the keys of `expected` only; lists match element by element and must have
    the same length; anything else must be equal. Otherwise a one-line reason with its path.
    """
    where = path or "<root>"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{where}: missing key {key!r}"
            reason = json_mismatch(value, actual[key], f"{path}.{key}" if path else str(key))
            if reason:
                return reason
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: expected a list of {len(expected)}, got {actual!r}"
        for i, (exp, act) in enumerate(zip(expected, actual, strict=True)):
            reason = json_mismatch(exp, act, f"{path}[{i}]")
            if reason:
                return reason
        return None
    if expected != actual:
        return f"{where}: expected {expected!r}, got {actual!r}"
    return None
