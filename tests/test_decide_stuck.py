"""Stuck detection across ticks: a balloon that does not move is excluded, then retried."""

from __future__ import annotations

from balloond.core import ControllerState
from balloond.core.state import DomainMemo
from balloond.model import DomainDecision, DomainSnapshot, Reason
from balloond.policy.model import Amount, Policy
from balloond.units import GiB, KiB, MiB
from tests.support.decide import NOW, dom, report, run

GREEDY = Policy(name="g", max_shrink_step=Amount(ratio=1.0), floor=Amount(size=256 * MiB))


def _tick(
    current: int, state: ControllerState, at: float, demand: int = 500 * MiB
) -> tuple[DomainDecision, ControllerState]:
    decision, state = run(
        dom("s", current, rep=report(demand, at=at)), policy=GREEDY, state=state, now=at
    )
    return decision.domains[0], state


def test_a_balloon_that_does_not_move_is_stuck_then_retried_with_backoff() -> None:
    d, state = _tick(2 * GiB, ControllerState.empty(), NOW)
    assert d.act and d.target == 600 * MiB
    # 10 s and 29 s later: no movement yet, not stuck yet (nothing re-issued either).
    d, state = _tick(2 * GiB, state, NOW + 10)
    assert (d.reason, d.act, d.target) == (Reason.SHRINK_IDLE, False, 600 * MiB)
    assert "moving 2 GiB → 600 MiB (issued earlier)" in d.explanation
    d, state = _tick(2 * GiB, state, NOW + 29)
    assert d.reason is not Reason.STUCK
    d, state = _tick(2 * GiB, state, NOW + 31)
    assert (d.reason, d.act) == (Reason.STUCK, False)
    assert state.stuck_until("uuid-s") == NOW + 31 + 60
    assert "stuck at 2 GiB" in d.explanation and "retry at" in d.explanation
    d, state = _tick(2 * GiB, state, NOW + 90)
    assert d.reason is Reason.STUCK
    # Retry: the target is issued again and the domain gets a full stuck_after to move.
    d, state = _tick(2 * GiB, state, NOW + 92)
    assert d.act and d.reason is not Reason.STUCK
    d, state = _tick(2 * GiB, state, NOW + 120)
    assert d.reason is not Reason.STUCK
    d, state = _tick(2 * GiB, state, NOW + 123)
    assert d.reason is Reason.STUCK
    assert state.stuck_until("uuid-s") == NOW + 123 + 120  # the second strike waits twice as long


def test_movement_clears_the_stuck_mark() -> None:
    d, state = _tick(2 * GiB, ControllerState.empty(), NOW)
    d, state = _tick(2 * GiB, state, NOW + 31)
    assert d.reason is Reason.STUCK
    # It moves after all (a quarter of the way): strikes cleared, no longer stuck.
    d, state = _tick(2 * GiB - 400 * MiB, state, NOW + 40)
    assert d.reason is not Reason.STUCK
    assert state.memo("uuid-s").strikes == 0 and state.stuck_until("uuid-s") is None


def test_a_crawl_of_a_few_pages_is_not_progress() -> None:
    d, state = _tick(2 * GiB, ControllerState.empty(), NOW)
    d, state = _tick(2 * GiB - 64 * KiB, state, NOW + 20)
    d, state = _tick(2 * GiB - 128 * KiB, state, NOW + 40)
    assert d.reason is Reason.STUCK  # squeezed would have counted each page as progress


def test_reaching_the_target_ends_progress_tracking_but_keeps_the_target() -> None:
    d, state = _tick(2 * GiB, ControllerState.empty(), NOW)
    d, state = _tick(600 * MiB + 4 * MiB, state, NOW + 10)  # within 1%: reached
    memo = state.memo("uuid-s")
    assert memo.target == 600 * MiB and memo.mark_at is None and d.reason is Reason.STEADY
    # Long after, still 4 MiB short of a shrink target: the balloon stopped a few pages
    # short, as drivers do; that is not stuck.
    d, state = _tick(600 * MiB + 4 * MiB, state, NOW + 500)
    assert d.reason is Reason.STEADY


def test_the_last_pages_of_a_growth_stay_promised() -> None:
    grow = dom("g", 1 * GiB, rep=report(1 * GiB, requested=2 * GiB))
    _, state = run(grow, free=2 * GiB, reserve=1 * GiB)
    nearly = dom("g", 2 * GiB - 10 * MiB, rep=report(1 * GiB, requested=2 * GiB))
    _, state = run(nearly, free=1 * GiB + 10 * MiB, reserve=1 * GiB, state=state, now=NOW + 5)
    assert state.promised("uuid-g", 2 * GiB - 10 * MiB) == 10 * MiB


def test_a_stuck_mark_far_in_the_future_is_capped() -> None:
    state = ControllerState.of({"uuid-s": DomainMemo(stuck_until=NOW + 10**9, strikes=5)})
    d, state = _tick(2 * GiB, state, NOW)
    assert d.reason is Reason.STUCK
    assert state.stuck_until("uuid-s") == NOW + 1800  # never permanent
    d, state = _tick(2 * GiB, state, NOW + 1801)
    assert d.reason is not Reason.STUCK and d.act


def test_stuck_growth_stays_promised() -> None:
    def grow(at: float) -> DomainSnapshot:
        return dom("s", 1 * GiB, rep=report(1 * GiB, requested=3 * GiB, at=at))

    _, state = run(grow(NOW), now=NOW)
    _, state = run(grow(NOW + 31), state=state, now=NOW + 31)
    assert state.stuck_until("uuid-s") is not None
    other = dom("o", 1 * GiB, rep=report(1 * GiB, requested=2 * GiB, at=NOW + 40))
    decision, _ = run(
        grow(NOW + 40), other, state=state, now=NOW + 40, free=3 * GiB, reserve=1 * GiB
    )
    # 2 GiB above the reserve, all promised to the stuck domain: nothing for the other.
    assert decision.domains[1].act is False
