"""`anycast-ctl sim predict`: the next hop one Linux router picks for each flow of a CSV file.

    anycast-ctl sim predict --nexthop 10.0.1.2 --nexthop 10.0.2.2:3 --seed 7 --flows flows.csv

The input rows come back unchanged and in input order, with a `nexthop` column added. The
prediction itself is pure (sim/router_predict.py); this module streams the file through it
and prints, in bounded memory.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from typing import IO, TYPE_CHECKING

import click

from anycast_ctl.errors import Problem, UserError

if TYPE_CHECKING:  # numpy comes with the prediction, imported when the command runs, not for --help
    import numpy as np

    from anycast_ctl.sim.linux import LinuxHashSettings
    from anycast_ctl.sim.router_predict import NextHop

OUTPUT_BATCH = 10_000  # JSON objects per write: bounded buffers, few calls


def _write_prediction(
    flows_path: str,
    hops: list[NextHop],
    settings: LinuxHashSettings,
    as_json: bool,
    out: IO[bytes],
) -> np.ndarray:
    """Stream the flows file through the kernel model into `out`; returns flows per next hop."""
    import numpy as np

    from anycast_ctl.sim import router_predict
    from anycast_ctl.sim.csvflows import iter_csv_chunks, open_flows

    source, stream = open_flows(flows_path)
    header: list[str] = []
    labels = [h.address for h in hops]
    counts = np.zeros(len(hops), np.int64)
    chunks = iter_csv_chunks(source, stream, header_out=header)
    results = router_predict.predictions(chunks, [h.weight for h in hops], settings)
    first = True
    batch: list[str] = []
    for chunk, choices in results:
        counts += np.bincount(choices, minlength=len(hops))
        if not as_json:
            if first:
                out.write(router_predict.csv_header(header))
                first = False
            out.write(router_predict.csv_rows(chunk, choices, labels))
            continue
        keys = [name.strip().lower() for name in header]
        for item in router_predict.json_items(chunk, choices, keys, labels):
            batch.append(("[\n" if first else ",\n") + item)
            first = False
            if len(batch) >= OUTPUT_BATCH:
                out.write("".join(batch).encode())
                batch.clear()
    if as_json:
        out.write(("".join(batch) + ("[\n]\n" if first else "\n]\n")).encode())
    elif first:
        out.write(router_predict.csv_header(header))  # a header and no rows
    return counts


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
    from anycast_ctl.sim.router_predict import hash_settings, parse_nexthops, summary_table

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
    # The whole answer goes to a temporary file first: a bad row near the end of a big file
    # must not leave half an output on stdout (and memory stays bounded either way).
    with tempfile.TemporaryFile() as spool:
        counts = _write_prediction(flows_path, hops, settings, as_json, spool)
        spool.seek(0)
        stdout = sys.stdout.buffer
        shutil.copyfileobj(spool, stdout)
        stdout.flush()
    if summary:
        click.echo(summary_table(counts, hops), err=True)
