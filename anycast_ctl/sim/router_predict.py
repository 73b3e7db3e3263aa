"""Which next hop one Linux router picks for each flow of a CSV file (pure): what
`anycast-ctl sim predict` prints.

    hops = [parse_nexthop("10.0.1.2"), parse_nexthop("10.0.2.2:3")]
    for chunk, choices in predictions(iter_csv_chunks(source, stream), weights, settings):
        out.write(csv_rows(chunk, choices, labels))        # choices: indices into hops

Memory stays bounded whatever the file's size: each chunk of `csvflows` is hashed, written
and dropped. The fast path's chunks keep the rows' raw bytes, so the output is each input
line plus ",NEXTHOP"; chunks the exact reader parsed are written with the csv module, which
gives the same bytes for plain rows and requotes the rest.

IPv4 and IPv6 rows may be mixed: each family is hashed as the kernel hashes it and the answers
are merged back in input order. Next-hop addresses are only labels, so their family need not
match the flows'.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from anycast_ctl.errors import Problem
from anycast_ctl.sim.csvflows import CsvChunk
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


def chunk_choices(
    chunk: CsvChunk, weights: Sequence[int], settings: LinuxHashSettings
) -> np.ndarray:
    """Per row of the chunk, in its order, the index of its next hop."""
    choices = np.zeros(chunk.count, np.int64)
    for part in chunk.parts:
        assert part.positions is not None
        choices[part.positions] = select_nexthops(part.flows, list(weights), settings)
    return choices


def predictions(
    chunks: Iterable[CsvChunk], weights: Sequence[int], settings: LinuxHashSettings
) -> Iterator[tuple[CsvChunk, np.ndarray]]:
    for chunk in chunks:
        yield chunk, chunk_choices(chunk, weights, settings)


def _rows_of(chunk: CsvChunk) -> list[list[str]]:
    if chunk.cells is not None:
        return chunk.cells
    assert chunk.raw is not None
    return [line.split(",") for line in chunk.raw.decode("ascii").splitlines()]


def csv_header(header: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([*header, "nexthop"])
    return out.getvalue().encode()


def append_labels(raw: bytes, choices: np.ndarray, labels: Sequence[str]) -> bytes:
    """Each line of `raw` (every one ends with a newline) with ",LABEL" of its choice added,
    built with numpy: a million rows are a few array operations, not a million joins."""
    buf = np.frombuffer(raw, np.uint8)
    tails = [f",{label}".encode() for label in labels]
    sizes = np.array([len(t) for t in tails], np.int64)[choices]
    flat = np.frombuffer(b"".join(tails), np.uint8)
    tail_starts = np.concatenate(([0], np.cumsum([len(t) for t in tails])[:-1]))[choices]
    newlines = np.flatnonzero(buf == 10)
    before = np.concatenate(([0], np.cumsum(sizes)[:-1]))  # label bytes ahead of each row
    out = np.empty(buf.size + int(sizes.sum()), np.uint8)
    # Every input byte moves right by the labels of the rows before it; a row's newline
    # also by its own label, which goes just in front of it.
    shift = np.repeat(before, np.diff(np.concatenate(([-1], newlines))))
    shift[newlines] += sizes
    out[np.arange(buf.size) + shift] = buf
    within = np.arange(int(sizes.sum())) - np.repeat(before, sizes)
    out[np.repeat(newlines + before, sizes) + within] = flat[np.repeat(tail_starts, sizes) + within]
    return out.tobytes()


def csv_rows(chunk: CsvChunk, choices: np.ndarray, labels: Sequence[str]) -> bytes:
    """The chunk's rows as read, each with its next hop's label as a last column."""
    if chunk.raw is not None:
        return append_labels(chunk.raw, choices, labels)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(
        [*cells, labels[c]] for cells, c in zip(chunk.cells or [], choices.tolist(), strict=True)
    )
    return out.getvalue().encode()


def json_items(
    chunk: CsvChunk, choices: np.ndarray, keys: list[str], labels: Sequence[str]
) -> Iterator[str]:
    """One JSON object per row: its cells under the header's names, plus nexthop."""
    for cells, c in zip(_rows_of(chunk), choices.tolist(), strict=True):
        yield json.dumps({**dict(zip(keys, cells, strict=True)), "nexthop": labels[c]})


def summary_table(flows_per_hop: np.ndarray, hops: list[NextHop]) -> str:
    """Flows per next hop (kernel order) next to the share its weight promises."""
    counts = flows_per_hop.tolist()
    total_weight, total = sum(h.weight for h in hops), int(flows_per_hop.sum())
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
