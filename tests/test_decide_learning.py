"""Across ticks: hot cache the statistics cannot see is learned from the stall it causes."""

from __future__ import annotations

from balloond.core import ControllerState, DomainMemo
from balloond.model import DomainDecision, MemoryStats, Reason
from balloond.policy.model import Amount, Policy
from balloond.units import GiB, MiB
from tests.support.decide import NOW, dom, report, run

LOW_FLOOR = Policy(name="low-floor", floor=Amount(size=128 * MiB))


def _stats(faults: int, at: float) -> MemoryStats:
    # 1 GiB guest: 524 MiB used (MemTotal - MemAvailable), 490 MiB of cache, 10 MiB free.
    return MemoryStats(
        total=GiB, available=500 * MiB, unused=10 * MiB, major_faults=faults, last_update=at
    )


def _tick(state: ControllerState, faults: int, at: float) -> tuple[DomainDecision, ControllerState]:
    decision, state = run(
        dom("legacy", GiB, st=_stats(faults, at)), policy=LOW_FLOOR, state=state, now=at
    )
    return decision.domains[0], state


def test_faults_after_a_shrink_teach_the_hidden_cache() -> None:
    d, state = _tick(ControllerState.empty(), 0, NOW)
    assert d.reason is Reason.SHRINK_IDLE and d.act  # 524 MiB used + 20%: shrink
    # 10 s later the guest refaults 50 pages/s: the shrink reached its hot cache.
    d, state = _tick(state, 500, NOW + 10)
    assert d.demand == 524 * MiB + 490 * MiB
    assert d.reason is Reason.GROW_DEMAND and d.target > GiB
    assert state.memo("uuid-legacy").hidden == 490 * MiB
    # Calm again, the learned cache is kept: no new shrink toward 630 MiB.
    d, state = _tick(state, 500, NOW + 20)
    assert d.target >= GiB


def test_faults_without_a_recent_shrink_are_ordinary_reads() -> None:
    memo = DomainMemo(major_faults=0, counters_at=NOW - 10, shrunk_at=NOW - 1000)
    d, state = _tick(ControllerState.of({"uuid-legacy": memo}), 500, NOW)
    assert d.reason is Reason.SHRINK_IDLE and state.memo("uuid-legacy").hidden is None


def test_a_small_stall_stops_the_shrink_before_the_pressure_target() -> None:
    # PSI at a fifth of the 0.5% target: not short, but the working set was reached.
    rep = report(500 * MiB, psi=0.001, at=NOW)
    st = MemoryStats(total=GiB, available=500 * MiB, unused=10 * MiB, last_update=NOW)
    decision, state = run(dom("web", GiB, rep=rep, st=st), policy=LOW_FLOOR)
    d = decision.domains[0]
    assert d.reason is Reason.GROW_DEMAND and state.memo("uuid-web").hidden == 490 * MiB


def test_a_busy_readers_usual_faults_are_not_blamed_on_a_shrink() -> None:
    # This guest faults 100 pages/s all day; after a shrink it still does: not the shrink.
    memo = DomainMemo(major_faults=0, counters_at=NOW - 10, shrunk_at=NOW - 10, fault_base=100.0)
    d, state = _tick(ControllerState.of({"uuid-legacy": memo}), 1000, NOW)
    assert d.reason is Reason.SHRINK_IDLE and state.memo("uuid-legacy").hidden is None
    # Three times its usual rate right after the shrink: that is the shrink.
    memo = DomainMemo(major_faults=0, counters_at=NOW - 10, shrunk_at=NOW - 10, fault_base=100.0)
    d, state = _tick(ControllerState.of({"uuid-legacy": memo}), 3000, NOW)
    assert state.memo("uuid-legacy").hidden == 490 * MiB


def test_the_usual_fault_rate_is_learned_only_away_from_shrinks() -> None:
    memo = DomainMemo(major_faults=0, counters_at=NOW - 10, fault_base=100.0)
    _, state = _tick(ControllerState.of({"uuid-legacy": memo}), 2000, NOW)  # 200/s, no shrink
    assert state.memo("uuid-legacy").fault_base == 100.0 + (200.0 - 100.0) * 0.2
