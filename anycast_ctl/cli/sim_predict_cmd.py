"""`anycast-ctl sim predict`: the next hop one Linux router picks for each flow of a CSV file.

    anycast-ctl sim predict --nexthop 10.0.1.2 --nexthop 10.0.2.2:3 --seed 7 --flows flows.csv

The input rows come back unchanged and in input order, with a `nexthop` column added. The
prediction itself is pure (sim/router_predict.py); this module reads the file and prints.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import TYPE_CHECKING

import click

from anycast_ctl.errors import Problem, UserError

if TYPE_CHECKING:  # numpy comes with the prediction, imported when the command runs, not for --help
    from anycast_ctl.sim.router_predict import NextHop, Prediction

STDIN = "-"
STDIN_NAME = "<stdin>"
OUTPUT_BATCH = 10_000  # rows per write: bounded buffers, few calls


def _read_text(path: str) -> tuple[str, str]:
    """(source name, whole text) of the flows file or stdin."""
    source = STDIN_NAME if path == STDIN else path
    try:
        if path == STDIN:
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
        return source, data.decode("utf-8-sig")  # a spreadsheet's BOM is not part of "src"
    except OSError as exc:
        raise UserError.single(source, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError.single(
            source, "", f"not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None


def _emit_csv(text: str, prediction: Prediction, hops: list[NextHop]) -> None:
    from anycast_ctl.sim.router_predict import iter_rows

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*prediction.header, "nexthop"])
    for n, (cells, choice) in enumerate(iter_rows(text, prediction), 1):
        writer.writerow([*cells, hops[choice].address])
        if n % OUTPUT_BATCH == 0:
            click.echo(out.getvalue(), nl=False)
            out.seek(0)
            out.truncate()
    click.echo(out.getvalue(), nl=False)


def _emit_json(text: str, prediction: Prediction, hops: list[NextHop]) -> None:
    """A JSON list, one object per line: the row's cells under the header's names, plus nexthop."""
    from anycast_ctl.sim.router_predict import iter_rows

    keys = [name.strip().lower() for name in prediction.header]
    batch: list[str] = []
    click.echo("[", nl=False)
    for n, (cells, choice) in enumerate(iter_rows(text, prediction)):
        item = json.dumps({**dict(zip(keys, cells, strict=True)), "nexthop": hops[choice].address})
        batch.append(("\n" if n == 0 else ",\n") + item)
        if len(batch) == OUTPUT_BATCH:
            click.echo("".join(batch), nl=False)
            batch.clear()
    click.echo("".join(batch) + "\n]")


@click.command("predict")
@click.option(
    "--nexthop",
    "nexthops",
    multiple=True,
    metavar="ADDR[:WEIGHT]",
    help="A next hop of the route, repeated in the kernel's order (`ip route show`). "
    "WEIGHT 1..256, default 1; an IPv6 next hop with a weight is written [ADDR]:WEIGHT. "
    "Printed in canonical form.",
)
@click.option(
    "--policy",
    default="3",
    show_default=True,
    help="fib_multipath_hash_policy: 0 (addresses), 1 (5-tuple) or 3 (--fields).",
)
@click.option(
    "--fields",
    default="0x37",
    show_default=True,
    help="fib_multipath_hash_fields (policy 3), hex or decimal.",
)
@click.option(
    "--seed", metavar="S", help="fib_multipath_hash_seed, non-zero (required), hex or decimal."
)
@click.option(
    "--local", is_flag=True, help="Packets the router sends itself (default: packets it forwards)."
)
@click.option(
    "--flows",
    "flows_path",
    metavar="FILE",
    help=(
        "CSV with the header src,dst,proto,sport,dport; proto a number or tcp/udp/...;"
        " '-' reads stdin."
    ),
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON list of objects (the row's values and nexthop) instead of CSV.",
)
@click.option("--summary", is_flag=True, help="Also print flows per next hop to stderr.")
def predict(
    nexthops: tuple[str, ...],
    policy: str | None,
    fields: str | None,
    seed: str | None,
    local: bool,
    flows_path: str | None,
    as_json: bool,
    summary: bool,
) -> None:
    """Which next hop a Linux router picks for each flow, exactly as its kernel does.

    Prints the flows CSV with a `nexthop` column added. Errors name the CSV row as the
    file's line number (the header is row 1). One policy and one fields mask apply to IPv4
    and IPv6 alike; set net.ipv4.* and net.ipv6.* to the same values. The seed 0 (the
    kernel's default) means a random key per boot: set it on the router first.
    To check against `ip route get`: IPv4 answers like forwarded packets, `ip -6 route
    get` like --local ones.
    """
    from anycast_ctl.sim.router_predict import (
        hash_settings,
        parse_nexthops,
        predict_text,
        summary_table,
    )

    problems: list[Problem] = []
    hops = parse_nexthops(nexthops, problems)
    settings = hash_settings(policy, fields, seed, local, problems)
    if flows_path is None:
        problems.append(
            Problem(
                "--flows",
                "",
                "is required: a CSV file with the header src,dst,proto,sport,dport"
                " ('-' reads stdin)",
            )
        )
    if problems or settings is None:
        raise UserError(problems)
    assert flows_path is not None  # a missing --flows is one of the problems
    source, text = _read_text(flows_path)
    prediction = predict_text(text, source, [h.weight for h in hops], settings)
    (_emit_json if as_json else _emit_csv)(text, prediction, hops)
    if summary:
        click.echo(summary_table(prediction.choices, hops), err=True)
