"""The second chance's tables follow a change before the routers do: the peers hear before the
withdraw line, an announce waits for the node's own table, a table-only change runs one nft
transaction, and the likely owners of the next change are computed ahead."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from anycast_ctl.chance import agent as chance_agent, apply
from anycast_ctl.chance.likely import Likely, next_sets
from anycast_ctl.config.topology import load_topology
from anycast_ctl.render.chance import plan_for
from anycast_ctl.render.node_config import node_config

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"
ALL = frozenset({"lb1", "lb2", "lb3"})


def test_next_sets_are_one_node_leaving_or_joining() -> None:
    assert next_sets(frozenset({"lb1", "lb2"}), ["lb1", "lb2", "lb3"]) == [
        frozenset({"lb2"}),
        frozenset({"lb1"}),
        frozenset({"lb1", "lb2", "lb3"}),
    ]
    assert next_sets(frozenset({"lb1"}), ["lb1"]) == []  # the last node leaving moves nothing


def test_owners_stop_at_the_change_giving_enough_and_a_change_computed_ahead_is_cached() -> None:
    topo = load_topology(TOPOLOGY)
    likely = Likely(topo)
    history = (frozenset({"lb1", "lb2"}), ALL, frozenset({"lb2", "lb3"}))
    first = likely.owners(history, "lb3", 1, ALL)
    # Asked for one owner, the older change (lb1+lb2 -> lb2+lb3) was never computed.
    assert likely.candidates.cache_info().currsize == 1
    assert first == likely.owners(history, "lb3")[:1] == ("lb2",)
    fresh = Likely(topo)
    for after in next_sets(ALL, ALL):  # what the agent computes ahead
        fresh.candidates(ALL, after, "lb3")
    hits = fresh.candidates.cache_info().hits
    assert fresh.owners((ALL, frozenset({"lb2", "lb3"})), "lb3") == ("lb2",)
    assert fresh.candidates.cache_info().hits == hits + 1  # the change came computed


def _record(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(argv, netns, timeout, stdin=None):
        calls.append(list(argv))
        return "[]"

    monkeypatch.setattr(apply, "_run", run)
    monkeypatch.setattr(apply.nftlib, "available", lambda: False)
    return calls


def test_a_table_only_change_is_one_nft_run_and_a_device_change_redoes_the_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topo = load_topology(TOPOLOGY)
    before = plan_for(topo, "lb3", alive=ALL, likely=("lb1",))
    after = plan_for(topo, "lb3", alive=ALL, likely=("lb2",))
    calls = _record(monkeypatch)
    apply.apply_plan(after, "ns", previous=before)
    assert calls == [["nft", "-f", "-"]]
    calls.clear()
    lost = plan_for(topo, "lb3", alive=frozenset({"lb2", "lb3"}), likely=("lb2",))
    apply.apply_plan(lost, "ns", previous=before)  # lb1 down: the flood list changes
    assert ["nft", "-f", "-"] in calls and any(c[:2] == ["bridge", "fdb"] for c in calls)


class _Sent:
    def __init__(self) -> None:
        self.beats: list[bytes] = []

    def sendto(self, data: bytes, addr: object) -> None:
        self.beats.append(data)


def _agent() -> chance_agent.ChanceAgent:
    config = node_config(load_topology(TOPOLOGY), "lb1", run_dir=Path("/run/x"))
    chance = chance_agent.ChanceAgent(config)
    chance.loaded = True
    chance._transport = _Sent()  # type: ignore[assignment]
    return chance


def test_a_withdraw_tells_the_peers_at_once_and_never_waits() -> None:
    async def go() -> None:
        chance = _agent()
        chance.own_live = True
        sent = chance._transport
        assert isinstance(sent, _Sent)
        await asyncio.wait_for(chance.routes_change(False), 0.05)  # no update loop running
        assert [b'"s":"drained"' in beat for beat in sent.beats] == [True, True]  # both peers

    asyncio.run(go())


def test_an_announce_waits_for_the_own_table_first(monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        chance = _agent()
        applied: list[bool] = []

        async def update() -> None:
            await asyncio.sleep(0.02)
            applied.append(chance.own_live)

        monkeypatch.setattr(chance, "_update", update)
        loop = asyncio.create_task(chance._update_loop())
        await chance.routes_change(True)
        assert applied == [True]  # the table followed before the announce could go out
        sent = chance._transport
        assert isinstance(sent, _Sent) and all(b'"s":"live"' in b for b in sent.beats)
        loop.cancel()

    asyncio.run(go())


def test_an_announce_whose_table_never_follows_goes_out_after_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chance_agent, "ANNOUNCE_WAIT", 0.05)

    async def go() -> None:
        chance = _agent()
        await asyncio.wait_for(chance.routes_change(True), 1.0)  # no update loop: the bound

    asyncio.run(go())


def test_the_next_change_is_computed_ahead_only_once_the_table_was_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chance_agent, "WARM_AFTER", 0.05)

    async def go() -> None:
        chance = _agent()
        updates: list[int] = []
        warmed: list[int] = []

        async def update() -> None:
            updates.append(chance._generation)

        async def warm() -> None:
            warmed.append(chance._generation)

        monkeypatch.setattr(chance, "_update", update)
        monkeypatch.setattr(chance, "_warm", warm)
        loop = asyncio.create_task(chance._update_loop())
        chance._change()
        await asyncio.sleep(0.02)
        assert updates == [1] and warmed == []  # followed at once, not warmed yet
        chance._change()  # within WARM_AFTER: followed at once, and the wait starts again
        await asyncio.sleep(0.02)
        assert updates == [1, 2] and warmed == []
        await asyncio.wait_for(_until(lambda: warmed == [2]), 1.0)
        loop.cancel()

    asyncio.run(go())


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.005)
