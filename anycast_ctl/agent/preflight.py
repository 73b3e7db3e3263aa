"""The one validation of a node config: `config check`, `agent run` and a SIGHUP reload all
call `check_node_config`, so the agent refuses exactly what `config check` rejects, before it
announces anything.

Beyond the model's own checks it covers what only later stages would trip on: what ExaBGP
cannot carry (a VIP no neighbor can take), and what building the checks reads (CA files,
proxy names). It contacts and runs nothing.
"""

from __future__ import annotations

from pathlib import Path

from anycast_ctl.config.node import NodeConfig, load_node_config
from anycast_ctl.errors import Problem, UserError


def node_config_problems(config: NodeConfig, source: str) -> list[Problem]:
    """What a loaded (model-valid) node config still cannot do, one Problem per field."""
    from anycast_ctl.agent.checks import build_check
    from anycast_ctl.render.exabgp import exabgp_problems

    problems = [Problem(source, where, what) for where, what in exabgp_problems(config)]
    for name, spec in config.checks.items():
        try:
            build_check(name, spec)
        except UserError as exc:
            problems.extend(Problem(source, p.where, p.what) for p in exc.problems)
    return problems


def check_node_config(path: str | Path) -> NodeConfig:
    """Load and fully validate a node config; UserError lists every problem."""
    config = load_node_config(path)
    problems = node_config_problems(config, str(path))
    if problems:
        raise UserError(problems)
    return config
