"""traffic.per_client: the per-client fan-out both lab traffic paths share (namespaces and
containers), run against a fake exec that answers like the traffic client."""

from __future__ import annotations

import json
import threading

import pytest

from anycast_ctl.config.topology import load_topology
from anycast_ctl.lab.errors import LabError
from anycast_ctl.lab.experiments.traffic import per_client, plan_flows
from anycast_ctl.lab.net.daemons import CommandResult

TWO = load_topology("topologies/two-routers.yaml")


class FakeExec:
    """Answers each flow of a batch with its own source port; records what it was given."""

    def __init__(self, drop_last: dict[str, int] | None = None, fail: str | None = None):
        self.calls: dict[str, tuple[list[dict], float]] = {}
        self.threads: set[int] = set()
        self.drop_last = drop_last or {}
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, client: str, batch: str, limit: float) -> CommandResult:
        flows = json.loads(batch)
        with self.lock:
            self.calls[client] = (flows, limit)
            self.threads.add(threading.get_ident())
        if client == self.fail:
            return CommandResult(("x",), 3, "", "boom\n")
        answers = [{"ok": True, "sport": f["sport"]} for f in flows]
        answers = answers[: len(answers) - self.drop_last.get(client, 0)]
        return CommandResult(("x",), 0, json.dumps(answers), "")


def test_each_client_gets_its_own_flows_and_answers_land_in_flow_order():
    flows = plan_flows(TWO, 40, first_port=20000)
    fake = FakeExec()
    raw = per_client(flows, fake, concurrency=8, timeout=5.0)
    assert set(fake.calls) == {"c1", "c2"}
    for client, (batch, _) in fake.calls.items():
        assert [f["sport"] for f in batch] == [f.sport for f in flows if f.client == client]
        assert all(f["client"] == client for f in batch)
    assert [a["sport"] for a in raw if a] == [f.sport for f in flows]


def test_the_time_limit_grows_with_rounds_of_concurrency():
    flows = plan_flows(TWO, 40)  # 20 flows per client
    fake = FakeExec()
    per_client(flows, fake, concurrency=8, timeout=2.0)  # 3 rounds each
    assert {limit for _, limit in fake.calls.values()} == {30 + 3 * 2.0 * 3}


def test_a_client_that_answers_fewer_flows_leaves_the_rest_none():
    flows = plan_flows(TWO, 10)
    raw = per_client(flows, FakeExec(drop_last={"c2": 2}), concurrency=64, timeout=5.0)
    missing = [f for f, a in zip(flows, raw, strict=True) if a is None]
    assert [f.client for f in missing] == ["c2", "c2"]
    assert missing == [f for f in flows if f.client == "c2"][-2:]


def test_a_failed_run_names_the_tool_and_the_client():
    flows = plan_flows(TWO, 10)
    with pytest.raises(LabError, match=r"traffic tool in c2 failed \(3\): boom"):
        per_client(flows, FakeExec(fail="c2"), concurrency=64, timeout=5.0, what="traffic tool")
