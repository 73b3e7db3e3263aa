"""Which next hop one Linux router picks for each flow of a CSV text (pure): what
`anycast-ctl sim predict` prints.

    hops = [parse_nexthop("10.0.1.2"), parse_nexthop("10.0.2.2:3")]
    prediction = predict_text(csv_text, "flows.csv", [h.weight for h in hops], settings)
    for cells, choice in iter_rows(csv_text, prediction): ...   # choice: index into hops

IPv4 and IPv6 rows may be mixed: each family is hashed as the kernel hashes it and the answers
are merged back in input order. Next-hop addresses are only labels, so their family need not
match the flows'.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from anycast_ctl.errors import Problem
from anycast_ctl.sim.csvflows import read_flows_csv
from anycast_ctl.sim.linux import ALL_MASK, LinuxHashSettings, select_nexthops

WEIGHT_MAX = 256  # `ip route ... nexthop ... weight W` accepts 1..256


@dataclass(frozen=True)
class NextHop:
    address: str  # canonical text: the label printed for each flow
    weight: int


def parse_nexthop(text: str) -> NextHop:
    """ADDR, ADDR:WEIGHT or [IPV6]:WEIGHT. Raises ValueError saying what is wrong.

    An IPv6 address contains colons, so with a weight it must be bracketed; without
    brackets the whole text is the address (weight 1).
    """
    spec = text.strip()
    weight_text: str | None = None
    if spec.startswith("["):
        address, closed, rest = spec[1:].partition("]")
        if not closed:
            raise ValueError("missing ']' after the bracketed address")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"expected ':WEIGHT' after ']', not {rest!r}")
            weight_text = rest[1:]
    elif spec.count(":") == 1:  # IPv4:WEIGHT (any IPv6 address has at least two colons)
        address, weight_text = spec.split(":")
    else:
        address = spec
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        hint = (
            " (an IPv6 next hop with a weight is written [ADDR]:WEIGHT)"
            if address.count(":") > 1
            else ""
        )
        raise ValueError(f"{address!r} is not an IP address{hint}") from None
    if spec.startswith("[") and ip.version != 6:
        raise ValueError("brackets are for IPv6 addresses; write an IPv4 next hop as ADDR:WEIGHT")
    weight = 1
    if weight_text is not None:
        try:
            weight = int(weight_text)
        except ValueError:
            raise ValueError(f"weight {weight_text!r} is not a whole number") from None
        if not 1 <= weight <= WEIGHT_MAX:
            raise ValueError(
                f"weight {weight} is outside 1..{WEIGHT_MAX} "
                "(the kernel's range for a route's next hops)"
            )
    return NextHop(str(ip), weight)


def parse_int(text: str) -> int:
    """Decimal or 0x-prefixed hex (0o and 0b work too); leading zeros are read as decimal."""
    cleaned = text.strip()
    try:
        return int(cleaned, 0)
    except ValueError:
        return int(cleaned, 10)  # "007"; raises ValueError for anything that is not a number


def hash_settings(
    policy: str | None,
    fields: str | None,
    seed: str | None,
    local: bool,
    problems: list[Problem],
) -> LinuxHashSettings | None:
    """The kernel's hashing sysctls from option texts; each bad one adds a Problem (None then)."""
    values = {}
    for option, text, low, high, why in (
        ("--policy", policy, 0, 3, "net.ipv4.fib_multipath_hash_policy: 0, 1 or 3"),
        (
            "--fields",
            fields,
            1,
            ALL_MASK,
            f"net.ipv4.fib_multipath_hash_fields: 0x1..{ALL_MASK:#x}",
        ),
        ("--seed", seed, 1, 0xFFFFFFFF, "net.ipv4.fib_multipath_hash_seed: 1..0xffffffff"),
    ):
        if text is None:
            problems.append(
                Problem(
                    option,
                    "",
                    f"is required ({why}; 0 means a random key per boot, "
                    "which cannot be predicted)",
                )
            )
            continue
        try:
            value = parse_int(text)
        except ValueError:
            problems.append(Problem(option, "", f"{text!r} is not a number ({why})"))
            continue
        if option == "--policy" and value == 2:
            problems.append(
                Problem(
                    option,
                    "",
                    "policy 2 hashes the inner headers of tunnelled packets; "
                    "not modelled (use 0, 1 or 3)",
                )
            )
        elif option == "--seed" and value == 0:
            problems.append(
                Problem(
                    option,
                    "",
                    "seed 0 makes the kernel use a random key chosen at boot, so nothing can "
                    "be predicted; set the sysctl to a non-zero value and pass it here",
                )
            )
        elif not low <= value <= high:
            problems.append(Problem(option, "", f"{text} is out of range ({why})"))
        else:
            values[option] = value
    if len(values) < 3:
        return None
    return LinuxHashSettings(
        values["--policy"], values["--fields"], values["--seed"], forwarded=not local
    )


def parse_nexthops(texts: tuple[str, ...], problems: list[Problem]) -> list[NextHop]:
    """Every --nexthop text parsed, in order; each bad one adds a Problem naming its position."""
    if not texts:
        problems.append(
            Problem(
                "--nexthop",
                "",
                "at least one is required: ADDR[:WEIGHT], repeated in the kernel's order "
                "(as `ip route show` lists them)",
            )
        )
    hops = []
    for position, text in enumerate(texts, 1):
        try:
            hops.append(parse_nexthop(text))
        except ValueError as exc:
            problems.append(Problem("--nexthop", f"#{position} {text!r}", str(exc)))
    return hops


@dataclass(frozen=True)
class Prediction:
    header: list[str]  # as written in the file
    lines: np.ndarray  # the CSV reader's line number of each flow, ascending (input order)
    choices: np.ndarray  # per flow, the index of its next hop in kernel order


def predict_text(
    text: str, source: str, weights: list[int], settings: LinuxHashSettings
) -> Prediction:
    """Parse (csvflows: errors name row and field), hash each family, re-merge. Pure."""
    flows = read_flows_csv(source, stream=io.StringIO(text, newline=""))
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    if not flows.parts:
        return Prediction(header, np.zeros(0, np.int64), np.zeros(0, np.int64))
    lines = np.concatenate([part.rows for part in flows.parts])
    choices = np.concatenate(
        [select_nexthops(part.flows, weights, settings) for part in flows.parts]
    )
    order = np.argsort(lines, kind="stable")
    return Prediction(header, lines[order], choices[order])


def iter_rows(text: str, prediction: Prediction) -> Iterator[tuple[list[str], int]]:
    """(cells exactly as read, next-hop index) per flow, in input order.

    Reads the text again instead of keeping a million rows of cells in memory: the same
    reader over the same text reports the same line numbers csvflows recorded, and rows
    it skipped (blank lines) are skipped here by not being among them.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    wanted, choices = prediction.lines.tolist(), prediction.choices.tolist()
    k = 0
    for row in reader:
        if k < len(wanted) and reader.line_num == wanted[k]:
            yield row, choices[k]
            k += 1
    if k != len(wanted):  # the two readers disagree: a bug, not bad input
        raise RuntimeError(f"matched {k} of {len(wanted)} flows to their rows")


def summary_table(choices: np.ndarray, hops: list[NextHop]) -> str:
    """Flows per next hop (kernel order) next to the share its weight promises."""
    counts = np.bincount(choices, minlength=len(hops)).tolist()
    total_weight, total = sum(h.weight for h in hops), len(choices)
    width = max(len("nexthop"), *(len(h.address) for h in hops))
    lines = [f"{'nexthop':<{width}}  weight  by weight   flows   share"]
    for hop, count in zip(hops, counts, strict=True):
        share = f"{100 * count / total:6.1f}%" if total else "      -"
        by_weight = 100 * hop.weight / total_weight
        lines.append(
            f"{hop.address:<{width}}  {hop.weight:>6}  {by_weight:8.1f}%  {count:>6}  {share}"
        )
    lines.append(f"{'total':<{width}}  {total_weight:>6}  {100.0:8.1f}%  {total:>6}")
    return "\n".join(lines)
