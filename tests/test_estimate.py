"""The demand estimator alone: sources, staleness, rates from counters, pressure correction."""

from __future__ import annotations

import math

import pytest

from balloond.core.estimate import (
    BOOST_MAX,
    BOOST_MIN,
    Estimate,
    boost_for,
    estimate,
    stats_problem,
)
from balloond.core.need import PRESS_MIN
from balloond.core.overhead import OVERHEAD_BASE, OVERHEAD_PER_MAXMEM
from balloond.core.state import DomainMemo
from balloond.model import DomainSnapshot, GuestReport, MemoryStats
from balloond.units import GiB, MiB
from tests.support.decide import DEFAULT, NOW, dom, report, stats


def est(d: DomainSnapshot, memo: DomainMemo | None = None, stats_at: float = NOW) -> Estimate:
    return estimate(d, DEFAULT, memo or DomainMemo(), NOW, 15.0, stats_at)


def test_statistics_give_memtotal_minus_memavailable() -> None:
    e = est(dom("a", 2 * GiB, used=700 * MiB))
    assert (e.demand, e.raw, e.source, e.short) == (700 * MiB, 700 * MiB, "stats", False)


def test_fresh_report_wins_over_statistics() -> None:
    e = est(dom("a", 2 * GiB, used=700 * MiB, rep=report(800 * MiB, psi=0.0002)))
    assert (e.demand, e.source, e.pressure) == (800 * MiB, "report", 0.0002)


def test_report_without_demand_falls_back_to_its_meminfo() -> None:
    rep = GuestReport(seq=1, received_at=NOW, mem_total=2 * GiB, mem_available=1 * GiB)
    assert est(dom("a", 2 * GiB, rep=rep)).demand == 1 * GiB


def test_nothing_usable_explains_why() -> None:
    e = est(dom("a", 2 * GiB, st=MemoryStats(total=2 * GiB, available=GiB, last_update=NOW - 99)))
    assert e.demand is None
    assert "no fresh guest report" in e.why_no_data and "99 s old" in e.why_no_data


@pytest.mark.parametrize(
    ("stats_value", "problem"),
    [
        (None, "no balloon statistics"),
        (MemoryStats(total=GiB), "no balloon statistics"),
        (MemoryStats(total=8 * GiB, available=GiB), "implausible MemTotal"),
        (MemoryStats(total=GiB, available=2 * GiB), "implausible MemAvailable"),
        (MemoryStats(total=GiB, available=GiB // 2, last_update=math.nan), "old"),
        (MemoryStats(total=GiB, available=GiB // 2, last_update=NOW), ""),
    ],
)
def test_stats_problems_are_named(stats_value: MemoryStats | None, problem: str) -> None:
    found = stats_problem(stats_value, 4 * GiB, NOW, 15.0)
    assert problem in found and (found == "") == (problem == "")


def test_swap_in_rate_from_counters_of_two_ticks() -> None:
    memo = DomainMemo(swap_in=1 * MiB, major_faults=100, counters_at=NOW - 10)
    d = dom("a", 2 * GiB, st=stats(GiB, 2 * GiB, swap_in=3 * MiB, faults=5100))
    e = est(d, memo)
    assert e.swap_in_rate == pytest.approx(2 * MiB / 10)
    assert e.major_fault_rate == pytest.approx(500.0)
    assert e.short  # 200 KiB/s of swap-in is a guest short of memory


def test_counter_reset_gives_no_rate() -> None:
    memo = DomainMemo(swap_in=10 * MiB, counters_at=NOW - 10)
    e = est(dom("a", 2 * GiB, st=stats(GiB, 2 * GiB, swap_in=0)), memo)
    assert e.swap_in_rate is None and not e.short


def test_major_faults_count_only_without_psi() -> None:
    memo = DomainMemo(major_faults=0, counters_at=NOW - 10)
    d = dom("a", 2 * GiB, st=stats(GiB, 2 * GiB, faults=10_000))
    assert est(d, memo).short
    with_psi = dom("a", 2 * GiB, st=stats(GiB, 2 * GiB, faults=10_000), rep=report(GiB, psi=0.0))
    assert not est(with_psi, memo).short


def test_pressure_correction_starts_from_current_size() -> None:
    """A stalled guest's reading is capped by its balloon: it needs more than it has. Its
    need is pushed a small step above its size; its want is built on a generous boost."""
    e = est(dom("a", 1 * GiB, rep=report(600 * MiB, psi=0.02)))
    assert e.short and e.raw == 600 * MiB
    assert e.boosted == GiB + int(GiB * boost_for(0.02, DEFAULT.pressure_target))
    # 0.02 / 0.005 = 4 times the target: 0.8 %, below the 1 % least step.
    assert e.demand == GiB + int(GiB * PRESS_MIN)


def test_swapped_out_memory_is_demand_when_swapping_in() -> None:
    rep = report(900 * MiB, psi=0.01, swap_total=2 * GiB, swap_free=GiB, swap_in_rate=1e6)
    assert est(dom("a", 1 * GiB, rep=rep)).demand == 900 * MiB + GiB


def test_corrected_demand_is_capped_by_maxmem() -> None:
    e = est(dom("a", 4 * GiB, maxmem=4 * GiB, rep=report(4 * GiB, psi=0.9)))
    assert e.demand == 4 * GiB


def test_boost_grows_with_overshoot_and_is_bounded() -> None:
    assert boost_for(None, 0.005) == BOOST_MIN
    assert boost_for(0.004, 0.005) == BOOST_MIN
    assert boost_for(0.041, 0.005) == pytest.approx(0.41)
    assert boost_for(1.0, 0.005) == BOOST_MAX
    assert boost_for(0.5, 0.0) == BOOST_MIN  # a zero target does not divide by zero


@pytest.mark.parametrize("psi", [math.nan, -0.5, 7.0])
def test_garbage_pressure_is_ignored(psi: float) -> None:
    e = est(dom("a", 2 * GiB, rep=report(GiB, psi=psi)))
    assert e.pressure is None and not e.short


def test_requested_target_must_be_plausible() -> None:
    assert est(dom("a", GiB, rep=report(GiB, requested=2 * GiB))).requested == 2 * GiB
    assert est(dom("a", GiB, rep=report(GiB, requested=64 * GiB))).requested is None
    assert est(dom("a", GiB, rep=report(GiB, requested=-1))).requested is None


def test_hidden_cache_is_learned_from_a_stall_and_kept() -> None:
    """The statistics count hot cache as available; a stall proves it was needed."""
    stalled = dom("a", 2 * GiB, st=stats(GiB, 2 * GiB), rep=report(GiB, psi=0.02))
    first = est(stalled)
    assert first.short and first.hidden == 1 * GiB  # all of MemAvailable was in use
    memo = DomainMemo(hidden=first.hidden, hidden_at=NOW - 60)
    calm = est(dom("a", 2 * GiB, st=stats(GiB, 2 * GiB), rep=report(GiB)), memo)
    assert not calm.short
    assert calm.demand == GiB + int(GiB * 0.5 ** (60 / 1800))  # decays slowly, 30 min half-life


def test_lie_is_measured_against_what_the_guest_occupies() -> None:
    # Claims 5 GiB while MemTotal is 3 GiB and nothing stalls: not believed.
    occupied = MemoryStats(total=3 * GiB, available=2 * GiB, unused=GiB, last_update=NOW)
    liar = est(dom("a", 3 * GiB, maxmem=6 * GiB, st=occupied, rep=report(5 * GiB)))
    assert (liar.source, liar.demand) == ("stats", 1 * GiB) and "claims more" in liar.note
    # The same claim from a guest that stalls is believed (up to twice its size per tick).
    short = est(dom("a", 3 * GiB, maxmem=6 * GiB, st=occupied, rep=report(5 * GiB, psi=0.1)))
    assert short.source == "report" and short.demand == 5 * GiB


def test_committed_as_witnesses_the_need_of_a_stalled_guest() -> None:
    rep = GuestReport(
        seq=1, received_at=NOW, demand=900 * MiB, psi_some=0.006, committed_as=1800 * MiB
    )
    # Barely over the target (boost 10%) but Committed_AS shows 1.8 GiB really in use: the
    # want is built on it. (It is evidence, not the need: allocations never touched count.)
    stalled = est(dom("a", 1 * GiB, rep=rep))
    assert stalled.boosted == 1800 * MiB and stalled.demand < 1800 * MiB
    calm = GuestReport(
        seq=1, received_at=NOW, demand=900 * MiB, psi_some=0.0, committed_as=1800 * MiB
    )
    calm_est = est(dom("a", 1 * GiB, rep=calm))
    assert calm_est.demand == calm_est.boosted == 900 * MiB  # not short: not evidence


def est_of(
    report: GuestReport | None = None,
    st: MemoryStats | None = None,
    memo: DomainMemo | None = None,
    current: int = 2 * GiB,
) -> Estimate:
    """A 2 GiB guest using 1 GiB by default, with this report, statistics and memo."""
    return est(dom("a", current, rep=report, st=st or stats(GiB, current)), memo)


@pytest.mark.parametrize("rate", [-1.0, math.nan, math.inf, 1e15, 2e15])
def test_a_garbage_agent_rate_is_no_rate(rate: float) -> None:
    rep = GuestReport(
        seq=1, received_at=NOW, demand=GiB, psi_some=0.0, swap_in_rate=rate, major_fault_rate=rate
    )
    e = est_of(rep, memo=DomainMemo(swap_in=0, major_faults=0, counters_at=NOW - 10))
    assert (e.swap_in_rate, e.major_fault_rate) == (None, None)  # not even the counters' rate


@pytest.mark.parametrize("rate", [0.0, 4096.0, 1e15 - 1])
def test_a_plausible_agent_rate_wins_over_the_counters(rate: float) -> None:
    rep = GuestReport(seq=1, received_at=NOW, demand=GiB, psi_some=0.0, swap_in_rate=rate)
    memo = DomainMemo(swap_in=0, counters_at=NOW - 10)
    assert est_of(rep, st=stats(GiB, 2 * GiB, swap_in=100 * MiB), memo=memo).swap_in_rate == rate


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
    e = est_of(st=stats(GiB, 2 * GiB, swap_in=new, faults=new), memo=memo)
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
