"""Each selection algorithm against its published balance and disruption figures."""

from fractions import Fraction

import numpy as np
import pytest

from anycast_ctl.sim.algorithms import (
    HashThresholdSelector,
    LinuxSelector,
    MaglevSelector,
    ModuloSelector,
    RendezvousSelector,
    ResilientSelector,
    bucket_wants,
    maglev_table,
)
from anycast_ctl.sim.flowarrays import FlowArrays
from anycast_ctl.sim.linux import LinuxHashSettings, flow_hash, select_nexthops

RNG = np.random.default_rng(2024)
RANDOM = RNG.integers(0, 1 << 32, size=400_000, dtype=np.uint64).astype(np.uint32)
# Evenly spaced hashes cover the 32-bit space exactly: region arithmetic without sampling noise.
EVEN = (np.arange(1 << 20, dtype=np.uint64) << np.uint64(12)).astype(np.uint32)


def names(n):
    return [f"n{i}" for i in range(n)]


def moved_after_removing(selector, k, hashes):
    before = np.array(selector.members)[selector.pick(hashes)]
    rest = [m for i, m in enumerate(selector.members) if i != k]
    after_sel = selector.evolve(rest, [1] * len(rest))
    after = np.array(after_sel.members)[after_sel.pick(hashes)]
    moved = before != after
    own = before == selector.members[k]
    return moved.mean(), (moved & ~own).mean()


def shares(selector, hashes):
    return np.bincount(selector.pick(hashes), minlength=len(selector.members)) / len(hashes)


def rfc2992_disruption(n, k):
    """Fraction of flows moved when region k (0-based) of n equal regions is removed (exact)."""
    stay = Fraction(0)
    for old in range(n):
        if old == k:
            continue
        new = old if old < k else old - 1
        lo = max(Fraction(old, n), Fraction(new, n - 1))
        hi = min(Fraction(old + 1, n), Fraction(new + 1, n - 1))
        stay += max(hi - lo, Fraction(0))
    return 1 - stay


@pytest.mark.parametrize("n", [3, 5, 9])
def test_hash_threshold_moves_half_at_the_ends_and_a_quarter_plus_in_the_middle(n):
    sel = HashThresholdSelector(names(n), [1] * n)
    figures = [moved_after_removing(sel, k, EVEN)[0] for k in range(n)]
    assert figures[0] == pytest.approx(0.5, abs=1e-4)
    assert figures[-1] == pytest.approx(0.5, abs=1e-4)
    assert figures[n // 2] == pytest.approx(0.25 + 1 / (4 * n), abs=1e-4)  # RFC 2992, section 4
    assert figures == pytest.approx([float(rfc2992_disruption(n, k)) for k in range(n)], abs=1e-4)


def test_modulo_n_moves_n_minus_1_over_n():
    for n in (4, 8):
        sel = ModuloSelector(names(n), [1] * n)
        for k in (0, n - 1):
            assert moved_after_removing(sel, k, RANDOM)[0] == pytest.approx((n - 1) / n, abs=0.01)


@pytest.mark.parametrize("cls", [RendezvousSelector, ResilientSelector])
def test_rendezvous_and_resilient_move_only_the_removed_share(cls):
    n = 8
    sel = cls(names(n), [1] * n)
    for k in (0, 3, 7):
        moved, collateral = moved_after_removing(sel, k, RANDOM)
        assert moved == pytest.approx(1 / n, abs=0.01)
        assert collateral == 0


@pytest.mark.parametrize("cls", [RendezvousSelector, ResilientSelector, MaglevSelector])
def test_adding_a_member_moves_about_one_over_n_plus_one_to_it(cls):
    n = 6
    sel = cls(names(n), [1] * n)
    grown = sel.evolve([*names(n), "new"], [1] * (n + 1))
    before = np.array(sel.members)[sel.pick(RANDOM)]
    after = np.array(grown.members)[grown.pick(RANDOM)]
    moved = before != after
    assert moved.mean() == pytest.approx(1 / (n + 1), abs=0.015)
    assert (moved & (after != "new")).mean() < 0.01  # almost nothing moves between old members


def test_maglev_is_near_perfectly_balanced_with_small_disruption():
    n = 8
    table = maglev_table(tuple(names(n)), (1,) * n, 65537)
    counts = np.bincount(table, minlength=n)
    assert counts.max() - counts.min() <= 1  # each member owns 65537/8 slots, +-1
    sel = MaglevSelector(names(n), [1] * n)
    for k in (0, 5):
        moved, collateral = moved_after_removing(sel, k, RANDOM)
        assert moved == pytest.approx(1 / n, abs=0.015)
        assert collateral < 0.02


def test_maglev_weights_give_proportional_slots():
    table = maglev_table(("a", "b", "c"), (1, 2, 1), 4099)
    assert np.bincount(table) / 4099 == pytest.approx([0.25, 0.5, 0.25], abs=0.001)


@pytest.mark.parametrize(
    "cls", [ModuloSelector, HashThresholdSelector, RendezvousSelector, MaglevSelector]
)
def test_weights_are_honoured(cls):
    sel = cls(["a", "b", "c"], [1, 3, 4])
    assert shares(sel, RANDOM) == pytest.approx([1 / 8, 3 / 8, 4 / 8], abs=0.01)


def test_resilient_bucket_counts_follow_the_kernel_rebalance():
    assert bucket_wants([1, 1, 1], 128) == [43, 42, 43]
    sel = ResilientSelector(["a", "b", "c"], [1, 1, 1], buckets=128)
    assert np.bincount(sel.table).tolist() == [43, 42, 43]
    fewer = sel.evolve(["a", "c"], [1, 1])
    assert np.bincount(fewer.table).tolist() == [64, 64]
    kept = sel.table != 1
    assert (
        np.array(["a", "b", "c"])[sel.table[kept]] == np.array(["a", "c"])[fewer.table[kept]]
    ).all()


def test_resilient_refuses_fewer_buckets_than_next_hops():
    with pytest.raises(ValueError, match="buckets"):
        ResilientSelector(names(4), [1] * 4, buckets=3)


def test_linux_selector_agrees_with_the_kernel_model():
    n = 5000
    flows = FlowArrays(
        RNG.integers(0, 1 << 32, n),
        RNG.integers(0, 1 << 32, n),
        np.full(n, 6),
        RNG.integers(1024, 65536, n),
        np.full(n, 443),
    )
    settings = LinuxHashSettings(policy=3, fields=0x37, seed=7)
    sel = LinuxSelector(["a", "b", "c"], [1, 2, 1], settings)
    expected = select_nexthops(flows, [1, 2, 1], settings)
    assert (sel.pick(flow_hash(flows, settings)) == expected).all()
