"""Every failover scenario, several runs each, for every implementation on a lab (one run:
failover_run.py; its settings: failover_settings.py; the report: failover_report.py).

    run_experiments(lab, ["anycast"], ["haproxy-kill", "drain"], "lb1", Settings(runs=5))
"""

from __future__ import annotations

from collections.abc import Callable

from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.baseline import Implementation
from anycast_ctl.lab.experiments.failover_report import Measurement, format_run
from anycast_ctl.lab.experiments.failover_run import Runner, Say
from anycast_ctl.lab.experiments.failover_settings import Settings
from anycast_ctl.lab.experiments.router_acts import pick_router
from anycast_ctl.lab.experiments.scenario_names import ROUTER_SCENARIOS, Scenario
from anycast_ctl.lab.experiments.scenarios import Deployment, deploy
from anycast_ctl.lab.handle import LabHandle
from anycast_ctl.lab.observe.fibset import FibSet


def run_experiments(
    lab: LabHandle,
    implementations: list[str],
    scenarios: list[str],
    lb: str,
    settings: Settings,
    say: Say | None = None,
    deploy_fn: Callable[[LabHandle, Implementation], Deployment] = deploy,
    restore_to: str | None = Implementation.ANYCAST,
    router: str | None = None,
) -> list[Measurement]:
    """Every scenario `settings.runs` times for every implementation, deploying each in turn
    on every LB node; at the end `restore_to` is deployed again (None: leave the last one).
    Router scenarios act on `router` (None: the first one router_acts.pick_router accepts;
    UserError when the topology has none). A bounded wait that runs out (the lab did not
    converge again, a daemon did not start) is a LabError naming the lab, like every other
    failure of the lab."""
    if any(Scenario(s) in ROUTER_SCENARIOS for s in scenarios):
        router = pick_router(lab.topology, router)
    nodes = {s: router if Scenario(s) in ROUTER_SCENARIOS else lb for s in scenarios}
    try:
        return _run_all(
            lab, implementations, scenarios, nodes, settings, say, deploy_fn, restore_to
        )
    except TimeoutError as exc:
        raise LabError(f"lab {lab.name}: {exc}") from exc


def _run_all(
    lab: LabHandle,
    implementations: list[str],
    scenarios: list[str],
    nodes: dict[str, str | None],
    settings: Settings,
    say: Say | None,
    deploy_fn: Callable[[LabHandle, Implementation], Deployment],
    restore_to: str | None,
) -> list[Measurement]:
    say = say or (lambda _msg: None)
    runner = Runner(lab, settings, say)
    out: list[Measurement] = []
    with FibSet(lab) as fibs:
        try:
            for impl in implementations:
                say(f"deploying {impl} on every LB node")
                dep = deploy_fn(lab, Implementation(impl))
                for scenario in scenarios:
                    for run in range(settings.runs):
                        node = nodes[scenario]
                        assert node is not None  # run_experiments picked one
                        m = runner.run(dep, Scenario(scenario), node, run, fibs)
                        say(format_run(m))
                        out.append(m)
        finally:
            if restore_to is not None and list(implementations) != [restore_to]:
                say(f"deploying {restore_to} again")
                deploy_fn(lab, Implementation(restore_to))
    return out
