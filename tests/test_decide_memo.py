"""What a claimant's memo carries to the next tick: the balloon statistics' counters and
the clock they were sampled at (both sanitised), and the held demand peak."""

from __future__ import annotations

import math

import pytest

from balloond.core import ControllerState
from balloond.model import MemoryStats
from balloond.units import GiB
from tests.support.decide import NOW, dom, run


@pytest.mark.parametrize("last_update", [None, math.nan, math.inf, -1.0, 0.0])
def test_statistics_without_a_believable_clock_are_taken_as_sampled_now(
    last_update: float | None,
) -> None:
    st = MemoryStats(
        total=2 * GiB, available=GiB, swap_in=4096, major_faults=7, last_update=last_update
    )
    _, state = run(dom("a", 2 * GiB, st=st))
    assert state.memo("uuid-a").counters_at == NOW


def test_negative_counters_are_not_carried_to_the_next_tick() -> None:
    st = MemoryStats(total=2 * GiB, available=GiB, swap_in=-1, major_faults=-1, last_update=NOW - 1)
    _, state = run(dom("a", 2 * GiB, st=st))
    memo = state.memo("uuid-a")
    assert (memo.swap_in, memo.major_faults, memo.counters_at) == (None, None, None)


def test_the_held_peak_keeps_a_guest_up_but_never_grows_it() -> None:
    first = dom("a", 2 * GiB, used=GiB + GiB // 2)
    _, state = run(first)
    peak = state.memo("uuid-a").peak
    # Demand falls: the peak (decaying) keeps the want up, but not above the balloon.
    decision, state = run(dom("a", 2 * GiB, used=GiB // 4), state=state, now=NOW + 10)
    later = state.memo("uuid-a").peak
    assert later is not None and peak is not None and GiB // 4 < later < peak
    assert decision.domains[0].target <= 2 * GiB
    # A fresh state (no peak) wants less than the held peak does.
    fresh, _ = run(dom("a", 2 * GiB, used=GiB // 4), state=ControllerState.empty(), now=NOW + 10)
    assert fresh.domains[0].target <= decision.domains[0].target
