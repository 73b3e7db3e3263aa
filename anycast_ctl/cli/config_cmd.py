"""`anycast-ctl config check|schema`: validate node configs without side effects."""

from __future__ import annotations

import json

import click

from anycast_ctl.config.node import NodeConfig


@click.group()
def config() -> None:
    """Validate node configs and print their JSON Schema."""


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the normalized config as JSON.")
def check(files: tuple[str, ...], as_json: bool) -> None:
    """Validate node config FILES. Nothing is contacted or executed.

    `agent run` applies exactly this validation before it announces anything."""
    from anycast_ctl.agent.preflight import check_node_config
    from anycast_ctl.errors import UserError

    problems = []
    loaded = {}
    for path in files:
        try:
            loaded[path] = check_node_config(path)
        except UserError as exc:
            problems.extend(exc.problems)
    if problems:
        raise UserError(problems)
    if as_json:
        click.echo(json.dumps({p: c.model_dump(mode="json") for p, c in loaded.items()}, indent=2))
    else:
        for path, cfg in loaded.items():
            click.echo(
                f"{path}: ok (node {cfg.node}, {len(cfg.vips)} VIPs, {len(cfg.checks)} checks)"
            )


@config.command("schema")
def schema() -> None:
    """Print the node config's JSON Schema (for editors and CI linting)."""
    click.echo(json.dumps(NodeConfig.model_json_schema(), indent=2))
