"""`anycast-ctl sim run|compare`: how evenly the routers spread flows, and what an event moves."""

from __future__ import annotations

import json
from pathlib import Path

import click

from anycast_ctl.cli.params import Finite, writable_dir, writable_file
from anycast_ctl.cli.sim_predict_cmd import predict
from anycast_ctl.errors import UserError

# At a few million flows per second a billion flows take minutes; beyond that a sample says
# the same. The bound keeps a mistyped 1e15 from running for days.
MAX_FLOWS = 1_000_000_000
MAX_ZIPF = 10.0

EVENT_HELP = (
    "withdraw:LB, add[:NAME], router:R or link:A-B; repeat for several"
    " (default: a withdraw, an add, a link and a router failure)"
)


class Count(click.ParamType):
    """A positive count: 250000, 250k, 1M, 100M."""

    name = "count"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = float(value)
        else:
            text = str(value).strip().lower().replace("_", "")
            scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
            try:
                number = float(text[:-1] if scale > 1 else text) * scale
            except ValueError:
                self.fail(f"{value!r} is not a count (e.g. 200000, 250k, 1M)", param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite count", param, ctx)
        if number < 1:
            self.fail(f"{value!r}: must be at least 1", param, ctx)
        if number > MAX_FLOWS:
            self.fail(f"{value!r} is more than {MAX_FLOWS:,} flows (the upper bound)", param, ctx)
        return int(number)


def _common(f):
    options = [
        click.argument("topology", type=click.Path(dir_okay=False)),
        click.option(
            "--flows",
            "count",
            type=Count(),
            default="200k",
            show_default=True,
            help=f"How many flows to generate (at most {MAX_FLOWS:,}; Ctrl-C stops a run).",
        ),
        click.option(
            "--seed",
            type=click.IntRange(0, 2**32 - 1),
            default=1,
            show_default=True,
            help="Seed of the flow generator.",
        ),
        click.option(
            "--zipf",
            type=Finite(0, MAX_ZIPF),
            default=1.5,
            show_default=True,
            help=f"Zipf exponent of bytes per flow (>1 and at most {MAX_ZIPF:g}; 0 = equal).",
        ),
        click.option(
            "--flows-file",
            type=click.Path(dir_okay=False),
            help="Read flows from CSV (src,dst,proto,sport,dport[,bytes]) instead.",
        ),
        click.option("--event", "events", multiple=True, help=EVENT_HELP),
        click.option("--no-events", is_flag=True, help="Only the balance, no events."),
        click.option(
            "--same-seed",
            is_flag=True,
            help="Give every router the topology-wide seed (shows polarization).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
        click.option(
            "--csv",
            "csv_out",
            type=click.Path(dir_okay=False),
            help="Also write tidy CSV rows to FILE.",
        ),
        click.option(
            "--plot",
            "plot_dir",
            type=click.Path(file_okay=False),
            help="Write PNG and SVG plots into DIR.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _prepare(topology, count, seed, zipf, flows_file, events, no_events, csv_out, plot_dir):
    from anycast_ctl.config.topology import load_topology
    from anycast_ctl.sim.fabric import parse_event
    from anycast_ctl.sim.run import flow_batches

    topo = load_topology(topology)
    if zipf != 0 and zipf <= 1:
        raise UserError.single("--zipf", "", "must be greater than 1 (or 0 for equal flows)")
    if csv_out:
        writable_file("--csv", csv_out)  # now, not after the whole run
    if plot_dir:
        writable_dir("--plot", plot_dir)
    parsed = []
    for text in events:
        try:
            parsed.append(parse_event(text, topo))
        except ValueError as exc:
            raise UserError.single("--event", f"{text}", str(exc)) from None
    if no_events and events:
        raise UserError.single("--no-events", "", "cannot be combined with --event")
    chosen = [] if no_events else (parsed or None)
    return topo, flow_batches(topo, flows=count, seed=seed, zipf=zipf, csv=flows_file), chosen


def _write_outputs(results, as_json, csv_out, plot_dir, table, parameters):
    from anycast_ctl.sim import report

    try:
        if csv_out:
            Path(csv_out).write_text(report.to_csv(results))
        if plot_dir:
            from anycast_ctl.sim import plots

            written = plots.plot_shares(results, Path(plot_dir))
            if any(r.events for r in results.values()):
                written += plots.plot_disruption(results, Path(plot_dir))
            if len(results) == 1:
                written += plots.plot_nexthops(next(iter(results.values())), Path(plot_dir))
    except OSError as exc:
        where = "--csv" if csv_out and not plot_dir else "--csv/--plot"
        name = exc.filename or csv_out or plot_dir
        raise UserError.single(where, str(name), f"cannot write: {exc.strerror or exc}") from None
    if as_json:
        payload = {
            "parameters": parameters,
            **report.to_json(results if len(results) > 1 else next(iter(results.values()))),
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(table)
        if plot_dir:
            click.echo(f"\nplots: {', '.join(str(p) for p in written)}")


def _parameters(count, seed, zipf, flows_file, same_seed, **extra) -> dict:
    source = (
        {"flows_file": flows_file}
        if flows_file
        else {"generated": count, "seed": seed, "zipf": zipf}
    )
    return {**source, "same_seed": same_seed, **extra}


@click.group()
def sim() -> None:
    """Simulate ECMP over a topology: balance per LB node and disruption per event."""


@sim.command("run")
@_common
@click.option(
    "--algorithm",
    type=click.Choice(["modulo", "hash-threshold", "rendezvous", "resilient", "maglev", "linux"]),
    help="Use this algorithm on every router instead of the topology's.",
)
def run(
    topology,
    count,
    seed,
    zipf,
    flows_file,
    events,
    no_events,
    same_seed,
    as_json,
    csv_out,
    plot_dir,
    algorithm,
):
    """Route flows through TOPOLOGY as configured: per-LB shares, polarization, events."""
    from anycast_ctl.sim import report
    from anycast_ctl.sim.run import simulate

    topo, batches, chosen = _prepare(
        topology, count, seed, zipf, flows_file, events, no_events, csv_out, plot_dir
    )
    result = simulate(topo, batches, events=chosen, algorithm=algorithm, same_seed=same_seed)
    parameters = _parameters(count, seed, zipf, flows_file, same_seed, algorithm=algorithm)
    _write_outputs(
        {algorithm or "topology": result},
        as_json,
        csv_out,
        plot_dir,
        report.run_table(result),
        parameters,
    )


@sim.command("compare")
@_common
def compare_cmd(
    topology,
    count,
    seed,
    zipf,
    flows_file,
    events,
    no_events,
    same_seed,
    as_json,
    csv_out,
    plot_dir,
):
    """Every algorithm side by side on the same flows and events."""
    from anycast_ctl.sim import report
    from anycast_ctl.sim.run import compare

    topo, batches, chosen = _prepare(
        topology, count, seed, zipf, flows_file, events, no_events, csv_out, plot_dir
    )
    results = compare(topo, batches, events=chosen, same_seed=same_seed)
    parameters = _parameters(count, seed, zipf, flows_file, same_seed)
    _write_outputs(results, as_json, csv_out, plot_dir, report.compare_table(results), parameters)


sim.add_command(predict)

from anycast_ctl.cli.sim_advise_cmd import advise  # noqa: E402 -- its own module, registered here

sim.add_command(advise)
