"""Argument types shared by the commands: finite numbers in documented ranges, and output
paths checked before the work that would write them starts."""

from __future__ import annotations

import math
import os
from pathlib import Path

import click


class Finite(click.ParamType):
    """A finite float in [low, high]: nan and inf are refused (click's FloatRange lets them by)."""

    name = "number"

    def __init__(self, low: float, high: float, *, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value, param, ctx):
        if isinstance(value, float | int) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        too_low = number <= self.low if self.low_open else number < self.low
        if too_low or number > self.high:
            bracket = "(" if self.low_open else "["
            self.fail(f"{value!r} is outside {bracket}{self.low:g}, {self.high:g}]", param, ctx)
        return number


def writable_file(option: str, path: str) -> Path:
    """Fail now, before a long run, if `path` cannot be written as a file."""
    from anycast_ctl.errors import UserError

    target = Path(path)
    if target.is_dir():
        raise UserError.single(option, path, "is a directory; give a file name")
    parent = target.parent
    if not parent.exists():
        raise UserError.single(option, path, f"no directory {parent} to write it in")
    _writable_dir(option, path, parent)
    return target


def writable_dir(option: str, path: str) -> Path:
    """Fail now if `path` cannot be a directory we create and write into."""
    from anycast_ctl.errors import UserError

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise UserError.single(option, path, "exists and is not a directory")
    _writable_dir(option, path, target)
    return target


def _writable_dir(option: str, path: str, directory: Path) -> None:
    from anycast_ctl.errors import UserError

    # The nearest existing ancestor decides whether the missing part can be created.
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError.single(option, path, f"{probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError.single(option, path, f"permission denied: cannot write in {probe}")
