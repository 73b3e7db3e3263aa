"""User-facing errors: one line per problem, naming the file and the field.

Everything a person can get wrong (config, topology, CLI arguments, CSV rows, socket
messages) is raised as a `UserError`; the CLI prints its lines and exits 2, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_USAGE = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (file, field path) and what."""

    source: str  # a file name, "<argument>", "<socket>" ...
    where: str  # field path such as "vips[1].checks[0].timeout"; "" for the whole input
    what: str

    def __str__(self) -> str:
        location = f"{self.source}: {self.where}" if self.where else self.source
        return f"{location}: {self.what}"


@dataclass
class UserError(Exception):
    """Bad input. Carries every problem found, not only the first."""

    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def single(cls, source: str, where: str, what: str) -> UserError:
        return cls([Problem(source, where, what)])

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]

    def __str__(self) -> str:
        return "\n".join(self.lines())
