"""A squeezed guest's real need (issue 13): pushed up while it stays short, from its PSI or,
without an agent, from its balloon statistics; kept a moment, never above what it holds once
the shortage stops; and the signs that tell thrashing from a guest taking its pages back."""

from __future__ import annotations

import pytest

from balloond.core.estimate import estimate
from balloond.core.need import (
    PRESS_HALF_LIFE,
    PRESS_KEEP,
    PRESS_MAX,
    PRESS_MIN,
    Shortage,
    held_pressed,
    in_swap,
    press_step,
    pressed_need,
)
from balloond.core.signals import SWAP_IN_SHORT, is_short
from balloond.core.state import DomainMemo
from balloond.model import GuestReport, MemoryStats
from balloond.units import PAGE, GiB, MiB
from tests.support.decide import DEFAULT, NOW, dom

TARGET = DEFAULT.pressure_target  # 0.5 %


def signs(
    pressure: float | None = None, swap_in: float | None = None, faults: float | None = None
) -> Shortage:
    return Shortage(pressure=pressure, swap_in_rate=swap_in, major_fault_rate=faults)


@pytest.mark.parametrize(
    ("sign", "step"),
    [
        (signs(), PRESS_MIN),  # short, nothing to size it by: the least step
        (signs(pressure=0.05), 0.02),  # ten times the target: 2 %
        (signs(pressure=0.25), 0.10),  # fifty times: 10 %
        (signs(pressure=1.0), PRESS_MAX),
        # Without PSI: what came back in over 10 s, as a share of the size (1 GiB here).
        (signs(swap_in=10 * MiB), 100 / 1024),
        (signs(faults=2560.0), 100 / 1024),  # 2,560 faults/s of 4 KiB pages: 10 MiB/s
        (signs(pressure=0.05, swap_in=20 * MiB), 200 / 1024),  # whichever says more
    ],
)
def test_one_tick_of_shortage_pushes_the_need_by_a_small_step(sign: Shortage, step: float) -> None:
    assert press_step(sign, TARGET, GiB) == pytest.approx(step)


def test_the_need_is_pushed_from_what_the_guest_has_and_never_back() -> None:
    # Short at 1 GiB with a reading of 900 MiB: it needs more than it has.
    first = pressed_need(DomainMemo(), 900 * MiB, GiB, signs(pressure=0.05), TARGET, NOW)
    assert first.need == GiB + int(GiB * 0.02) and first.at == NOW
    memo = DomainMemo(pressed=first.need, pressed_at=first.at)
    # Still short a tick later but the balloon has not grown yet (a slow driver, a grant the
    # host could not cover): the need found stands, it is not pushed further.
    again = pressed_need(memo, 900 * MiB, GiB, signs(pressure=0.05), TARGET, NOW + 2)
    assert again.need == first.need
    # Once the balloon got there and the guest still stalls: pushed from its new size.
    grown = first.need
    further = pressed_need(memo, 900 * MiB, grown, signs(pressure=0.05), TARGET, NOW + 4)
    assert further.need == grown + int(grown * 0.02)


def test_what_was_found_is_kept_a_moment_then_forgotten() -> None:
    memo = DomainMemo(pressed=2 * GiB, pressed_at=NOW)
    assert held_pressed(memo, GiB, NOW + PRESS_KEEP) == 2 * GiB
    half = held_pressed(memo, GiB, NOW + PRESS_KEEP + PRESS_HALF_LIFE)
    assert half == GiB + GiB // 2
    assert held_pressed(memo, 3 * GiB, NOW + 1) == 0  # the reading shows more: nothing held


def test_a_guest_that_no_longer_stalls_needs_no_more_than_it_holds() -> None:
    memo = DomainMemo(pressed=3 * GiB, pressed_at=NOW)
    calm = pressed_need(memo, GiB, 2 * GiB, None, TARGET, NOW + 2)
    assert calm.need == 2 * GiB and calm.at == NOW


def test_swap_witnesses_the_need_with_the_agents_figures_only() -> None:
    rep = GuestReport(seq=1, received_at=NOW, swap_total=2 * GiB, swap_free=GiB)
    assert in_swap(900 * MiB, GiB, rep) == 900 * MiB + GiB
    assert in_swap(900 * MiB, GiB, None) == 0
    nonsense = GuestReport(seq=1, received_at=NOW, swap_total=GiB, swap_free=2 * GiB)
    assert in_swap(900 * MiB, GiB, nonsense) == 0


@pytest.mark.parametrize(
    ("swap_in", "swap_out", "faults", "short"),
    [
        (SWAP_IN_SHORT, SWAP_IN_SHORT, None, True),  # thrashing: pages go in and out
        (SWAP_IN_SHORT * 100, 0.0, None, False),  # taking back what it swapped: not short
        (SWAP_IN_SHORT, None, None, True),  # no swap-out figure: swap-in alone, as before
        (0.0, 0.0, 300.0, True),  # a storm of refaults (page cache dropped)
        (32 * MiB, 0.0, 32 * MiB / PAGE, False),  # faults that are the swap-ins themselves
    ],
)
def test_thrashing_is_short_taking_pages_back_is_not(
    swap_in: float, swap_out: float | None, faults: float | None, short: bool
) -> None:
    assert is_short(None, swap_in, swap_out, faults, TARGET) is short


def test_a_guest_without_an_agent_is_judged_from_its_balloon_statistics() -> None:
    """No agent: the need of a thrashing guest is pushed above its size from the paging its
    balloon statistics count (swap-in 40 MiB/s over 10 s: 400 MiB more than its 2 GiB)."""
    before = MemoryStats(
        total=2 * GiB, available=GiB, swap_in=0, swap_out=0, major_faults=0, last_update=NOW - 2
    )
    memo = DomainMemo(swap_in=0, swap_out=0, major_faults=0, counters_at=NOW - 2)
    now = MemoryStats(
        total=2 * GiB,
        available=GiB // 8,
        swap_in=80 * MiB,
        swap_out=80 * MiB,
        major_faults=80 * MiB // PAGE,
        last_update=NOW,
    )
    est = estimate(dom("a", 2 * GiB, st=now), DEFAULT, memo, NOW, 15.0, NOW)
    assert est.short and est.source == "stats"
    assert est.demand == 2 * GiB + 400 * MiB
    calm = estimate(dom("a", 2 * GiB, st=before), DEFAULT, DomainMemo(), NOW, 15.0, NOW - 2)
    assert not calm.short and calm.demand == GiB
