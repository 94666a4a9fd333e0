"""Weighted water-filling: floors first, the rest by weight, nobody above its want."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from balloond.core.share import water_fill


def test_everyone_gets_their_want_when_the_pool_covers_it() -> None:
    assert water_fill([1, 1], [5, 7], [1, 1], 100) == [5, 7]


def test_floors_only_when_the_pool_cannot_pay_more() -> None:
    assert water_fill([3, 4], [10, 10], [1, 1], 5) == [3, 4]


def test_extra_is_split_by_weight() -> None:
    assert water_fill([0, 0], [100, 100], [3000, 1000], 40) == [30, 10]


def test_what_the_modest_leave_flows_to_the_hungry() -> None:
    # Equal weights: the first needs only 5, so the second gets the remaining 35.
    assert water_fill([0, 0], [5, 100], [1, 1], 40) == [5, 35]


def test_zero_weight_gets_its_floor_and_only_leftovers() -> None:
    assert water_fill([2, 2], [50, 50], [0, 1], 30) == [2, 28]
    assert water_fill([2, 2], [50, 10], [0, 1], 30) == [20, 10]


claimants = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 5000)),
    min_size=1,
    max_size=8,
)


@given(claimants, st.integers(0, 10_000))
def test_water_fill_invariants(items: list[tuple[int, int, int]], pool: int) -> None:
    floors = [f for f, _, _ in items]
    wants = [f + extra for f, extra, _ in items]
    weights = [w for _, _, w in items]
    alloc = water_fill(floors, wants, weights, pool)
    assert len(alloc) == len(items)
    assert sum(alloc) <= max(pool, sum(floors))
    for a, f, w in zip(alloc, floors, wants, strict=True):
        assert f <= a <= w
    if sum(wants) > pool >= sum(floors):
        # No memory is stranded: the pool is used up to rounding (one byte per claimant).
        assert sum(alloc) >= pool - len(items)
