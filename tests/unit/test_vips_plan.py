"""VIP planning on the loopback: desired vs present vs owned -> actions (pure tables)."""

import pytest

from anycast_ctl.agent.vips import (
    AddAddress,
    RemoveAddress,
    desired_for,
    foreign_desired,
    normalize,
    plan_loopback_changes,
)
from anycast_ctl.config.node import LoopbackMode

V4A, V4B, V6A = "192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"
LOOPBACK = {"127.0.0.1/8", "::1/128"}

PLAN_CASES = [
    # (name, desired, present, owned, expected actions)
    ("nothing to do", set(), LOOPBACK, set(), []),
    ("add missing v4 and v6", {V4A, V6A}, LOOPBACK, set(), [AddAddress(V4A), AddAddress(V6A)]),
    ("already ours and desired", {V4A}, LOOPBACK | {V4A}, {V4A}, []),
    (
        "remove ours no longer desired",
        set(),
        LOOPBACK | {V4A, V6A},
        {V4A, V6A},
        [RemoveAddress(V4A), RemoveAddress(V6A)],
    ),
    ("someone else's, not desired: left alone", set(), LOOPBACK | {V4A}, set(), []),
    ("someone else's, desired: not added twice", {V4A}, LOOPBACK | {V4A}, set(), []),
    ("adds before removes", {V4B}, {V4A}, {V4A}, [AddAddress(V4B), RemoveAddress(V4A)]),
    ("owned but already gone: nothing to remove", set(), LOOPBACK, {V4A}, []),
    ("never removes 127.0.0.1 even if marked owned", set(), LOOPBACK, set(), []),
    (
        "un-normalized inputs compare equal",
        {"2001:DB8:0::10/128", "192.0.2.10"},
        {V6A, V4A},
        {V6A, V4A},
        [],
    ),
    (
        "address order, numeric not textual",
        {"192.0.2.100/32", "192.0.2.9/32"},
        set(),
        set(),
        [AddAddress("192.0.2.9/32"), AddAddress("192.0.2.100/32")],
    ),
]


@pytest.mark.parametrize(
    "name,desired,present,owned,expected", PLAN_CASES, ids=[c[0] for c in PLAN_CASES]
)
def test_plan_loopback_changes_table(name, desired, present, owned, expected):
    assert plan_loopback_changes(desired, present, owned) == expected


def _apply(present, owned, actions):
    present, owned = set(present), set(owned)
    for action in actions:
        if isinstance(action, AddAddress):
            present.add(action.prefix)
            owned.add(action.prefix)
        else:
            present.discard(action.prefix)
            owned.discard(action.prefix)
    return present, owned


@pytest.mark.parametrize(
    "name,desired,present,owned,expected", PLAN_CASES, ids=[c[0] for c in PLAN_CASES]
)
def test_plan_is_idempotent_after_applying(name, desired, present, owned, expected):
    present, owned = _apply(present, owned, plan_loopback_changes(desired, present, owned))
    assert plan_loopback_changes(desired, present, owned) == []


@pytest.mark.parametrize(
    "name,desired,present,owned,expected", PLAN_CASES, ids=[c[0] for c in PLAN_CASES]
)
def test_plan_never_removes_what_we_do_not_own(name, desired, present, owned, expected):
    removed = {
        a.prefix
        for a in plan_loopback_changes(desired, present, owned)
        if isinstance(a, RemoveAddress)
    }
    assert removed <= {normalize(p) for p in owned}


def test_foreign_desired_names_someone_elses_vip():
    assert foreign_desired({V4A, V4B}, LOOPBACK | {V4A, V4B}, {V4B}) == {V4A}


ALL = {V4A, V4B, V6A}
DESIRED_CASES = [
    # (name, announced, mode, remove_on_withdraw, owned, expected)
    ("always: every VIP, none announced", set(), LoopbackMode.ALWAYS, True, set(), ALL),
    ("always ignores remove_on_withdraw", {V4A}, LoopbackMode.ALWAYS, False, set(), ALL),
    ("while_up: only announced", {V4A, V6A}, LoopbackMode.WHILE_UP, True, {V4B}, {V4A, V6A}),
    (
        "while_up keep: announced plus what we hold",
        {V4A},
        LoopbackMode.WHILE_UP,
        False,
        {V4B},
        {V4A, V4B},
    ),
    (
        "while_up keep: a VIP gone from config is not kept",
        set(),
        LoopbackMode.WHILE_UP,
        False,
        {"198.51.100.1/32"},
        set(),
    ),
    (
        "announced but not configured is ignored",
        {"198.51.100.1/32"},
        LoopbackMode.WHILE_UP,
        True,
        set(),
        set(),
    ),
    ("mode given as a plain string", {V4A}, "while_up", True, set(), {V4A}),
]


@pytest.mark.parametrize(
    "name,announced,mode,remove,owned,expected", DESIRED_CASES, ids=[c[0] for c in DESIRED_CASES]
)
def test_desired_for_table(name, announced, mode, remove, owned, expected):
    assert desired_for(announced, ALL, mode, remove, owned) == expected


def test_normalize_is_computed_once_per_address_and_still_refuses_junk() -> None:
    from anycast_ctl.agent.vips import normalize

    normalize.cache_clear()
    assert normalize("2001:DB8::A/128") == "2001:db8::a/128"
    assert normalize("2001:DB8::A/128") == "2001:db8::a/128"
    assert normalize.cache_info().hits == 1
    with pytest.raises(ValueError):
        normalize("not-an-address")
