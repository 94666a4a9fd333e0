"""The guest-data checks that `estimate` and `classify` write out inline (for speed) keep the
law they had as helper functions: garbage rates and counters give no rate, a bad statistics
clock means "now", the overhead is capped, and negative counters are not carried forward."""

from __future__ import annotations

import math

import pytest

from balloond.core import ControllerState
from balloond.core.estimate import OVERHEAD_BASE, OVERHEAD_PER_MAXMEM, Estimate, estimate
from balloond.core.state import DomainMemo
from balloond.model import GuestReport, MemoryStats
from balloond.units import GiB, MiB
from tests.support.decide import DEFAULT, NOW, dom, run, stats


def est(
    report: GuestReport | None = None,
    st: MemoryStats | None = None,
    memo: DomainMemo | None = None,
    current: int = 2 * GiB,
) -> Estimate:
    d = dom("a", current, rep=report, st=st or stats(GiB, current))
    return estimate(d, DEFAULT, memo or DomainMemo(), NOW, 15.0, NOW)


@pytest.mark.parametrize("rate", [-1.0, math.nan, math.inf, 1e15, 2e15])
def test_a_garbage_agent_rate_is_no_rate(rate: float) -> None:
    rep = GuestReport(
        seq=1, received_at=NOW, demand=GiB, psi_some=0.0, swap_in_rate=rate, major_fault_rate=rate
    )
    e = est(rep, memo=DomainMemo(swap_in=0, major_faults=0, counters_at=NOW - 10))
    assert (e.swap_in_rate, e.major_fault_rate) == (None, None)  # not even the counters' rate


@pytest.mark.parametrize("rate", [0.0, 4096.0, 1e15 - 1])
def test_a_plausible_agent_rate_wins_over_the_counters(rate: float) -> None:
    rep = GuestReport(seq=1, received_at=NOW, demand=GiB, psi_some=0.0, swap_in_rate=rate)
    memo = DomainMemo(swap_in=0, counters_at=NOW - 10)
    assert est(rep, st=stats(GiB, 2 * GiB, swap_in=100 * MiB), memo=memo).swap_in_rate == rate


@pytest.mark.parametrize(
    ("new", "old", "counters_at"),
    [
        (-4096, -8192, NOW - 10),  # negative counters: garbage even when they grow
        (4096, None, NOW - 10),  # nothing to compare with
        (8192, 4096, NOW),  # no time between the samples
        (8192, 4096, NOW + 5),  # samples out of order
    ],
)
def test_counters_give_no_rate_unless_they_grow_over_time(
    new: int, old: int | None, counters_at: float
) -> None:
    memo = DomainMemo(swap_in=old, major_faults=old, counters_at=counters_at)
    e = est(st=stats(GiB, 2 * GiB, swap_in=new, faults=new), memo=memo)
    assert (e.swap_in_rate, e.major_fault_rate) == (None, None)


@pytest.mark.parametrize(
    ("current", "memtotal", "overhead"),
    [
        (2 * GiB, 2 * GiB - 50 * MiB, 50 * MiB),  # a kernel's reservation
        (2 * GiB, 2 * GiB, 0),  # MemTotal is the balloon
        (2 * GiB, 2 * GiB + MiB, 0),  # MemTotal above the balloon: no overhead
        (2 * GiB, GiB, 0),  # more than a quarter of the balloon: a reading from before a grow
        # plausible as a share of the balloon, but more than a kernel reserves: capped
        (4 * GiB, 3 * GiB + 512 * MiB, OVERHEAD_BASE + int(4 * GiB * OVERHEAD_PER_MAXMEM)),
    ],
)
def test_the_overhead_is_what_a_kernel_plausibly_reserves(
    current: int, memtotal: int, overhead: int
) -> None:
    st = MemoryStats(total=memtotal, available=memtotal - GiB // 2, last_update=NOW - 1)
    d = dom("a", current, st=st)
    assert estimate(d, DEFAULT, DomainMemo(), NOW, 15.0, NOW).overhead == overhead


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
