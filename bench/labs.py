"""Labs shared by the bench modules of one `python -m bench` run.

Bringing a lab up is the slowest single step of a quick run, and four modules measure on the
default topology. So a lab comes up the first time a module asks for its topology and stays
up for the next module that needs it; `python -m bench` takes it down once no later module
lists its topology (a module's LABS), or as soon as the module says it is `done` with it.
A module that leaves state behind which a later one must not inherit (the lab's own
second-chance tables) gives its lab back with `spoil`.

A module starts from whatever deployment the previous one left (our agent or a baseline):
it deploys what it measures first (run_experiments does; deploy is cheap when the LB nodes
already run it). Tags are PREFIX-TOPOLOGY, so namespaces are PREFIX-TOPOLOGY-NODE
(`--lab-prefix`, BENCH_LAB_PREFIX; default acx-bench).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anycast_ctl.lab.topology_up import Lab

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PREFIX = "acx-bench"
PREFIX_ENV = "BENCH_LAB_PREFIX"
# A tag is PREFIX-TOPOLOGY and must stay within the lab's 40-character names.
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$")


class BadPrefix(ValueError):
    pass


def check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix):
        raise BadPrefix(
            f"lab prefix {prefix!r}: use 1-24 of A-Z a-z 0-9 _ . - (starting alphanumeric)"
        )
    return prefix


def prefix_from_env(given: str | None = None) -> str:
    return check_prefix(given or os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX)


def tag_for(prefix: str, topology: str) -> str:
    return f"{prefix}-{topology}"


def still_needed(remaining: Iterable[Iterable[str]]) -> set[str]:
    """The topologies some module still to run lists."""
    return {t for labs in remaining for t in labs}


class LabPool:
    def __init__(self, prefix: str = DEFAULT_PREFIX, say: Callable[[str], None] = print):
        self.prefix = check_prefix(prefix)
        self.say = say
        self._labs: dict[str, Lab] = {}
        self.up_seconds: dict[str, float] = {}  # every bring-up of this run, per topology
        # Topologies a module still to run needs (python -m bench sets it before each
        # module); `done` keeps those up. A pool of a module run alone keeps nothing.
        self.later: set[str] = set()

    def lab(self, topology: str) -> Lab:
        """The running lab of topologies/TOPOLOGY.yaml, brought up on first use."""
        if topology in self._labs:
            return self._labs[topology]
        from anycast_ctl.lab.topology_up import Lab

        tag = tag_for(self.prefix, topology)
        lab = Lab.up(REPO / "topologies" / f"{topology}.yaml", tag=tag)
        seconds = lab.bringup_seconds or 0.0
        self.up_seconds[topology] = self.up_seconds.get(topology, 0.0) + seconds
        self.say(f"  lab {tag} up in {seconds:.1f} s")
        self._labs[topology] = lab
        return lab

    def running(self) -> list[str]:
        return list(self._labs)

    def down(self, topology: str) -> None:
        lab = self._labs.pop(topology, None)
        if lab is not None:
            lab.down()
            self.say(f"  lab {lab.tag} down")

    def done(self, topology: str) -> None:
        """The module needs this lab no more: down, unless a later module needs it."""
        if topology not in self.later:
            self.down(topology)

    def spoil(self, topology: str) -> None:
        """The module left state behind: no later module may inherit this lab."""
        self.down(topology)

    def keep_only(self, topologies: set[str]) -> None:
        for topology in [t for t in self._labs if t not in topologies]:
            self.down(topology)

    def close(self) -> None:
        self.keep_only(set())

    def __enter__(self) -> LabPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@contextmanager
def pool_for(labs: LabPool | None) -> Iterator[LabPool]:
    """`labs` when `python -m bench` shares one, else a pool of the module's own, closed at
    the end (a module run alone)."""
    if labs is not None:
        yield labs
        return
    with LabPool(prefix_from_env()) as own:
        yield own
