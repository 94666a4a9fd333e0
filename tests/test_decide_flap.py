"""The real-VM lab's flapping guest (lab findings, 02:30): while a balloon deflates, `current`
and MemTotal are sampled at different moments, so balloon - MemTotal came out 20-45 MiB instead
of the steady 54 MiB; the target fell to about `current` and the tick applied it ("shrink
286 MiB → 286 MiB (-820 B)"), cancelling the grow in flight until the guest was OOM-killed.

Three fixes, one table each: the overhead is learned from settled samples; a domain grown for
pressure or demand keeps its size and its grow in flight for a cooldown; and a move within the
deadband of the balloon's size never lowers a grow in flight."""

from __future__ import annotations

import pytest

from balloond.core import ControllerState, DomainMemo
from balloond.core.overhead import overhead_for
from balloond.core.want import GROW_COOLDOWN
from balloond.model import DomainDecision, DomainSnapshot, Reason
from balloond.policy.model import Amount, Policy
from balloond.units import GiB, KiB, MiB
from tests.support.decide import NOW, dom, run, stats

# The lab's policy and guest: 512 MiB maxmem, 8 MiB deadband, 54.4 MiB not in MemTotal.
LAB = Policy(name="lab", floor=Amount(ratio=0.5), max_grow_step=None, deadband=Amount(size=8 * MiB))
MAXMEM = 512 * MiB
OVERHEAD = 54 * MiB + 400 * KiB
UUID = "uuid-d1"


def lab(current: int, used: int, gap: int, *, age: float = 1.0, at: float = NOW) -> DomainSnapshot:
    """The lab guest at `current`, using `used`, with MemTotal `gap` below the balloon; its
    statistics sampled `age` seconds before `at`."""
    st = stats(used, current - gap, age=age + (NOW - at))
    return dom("d1", current, maxmem=MAXMEM, st=st)


def tick(
    current: int, used: int, gap: int, state: ControllerState, at: float
) -> tuple[DomainDecision, ControllerState]:
    decision, state = run(
        lab(current, used, gap, at=at), free=4 * GiB, policy=LAB, state=state, now=at
    )
    return decision.domains[0], state


# --- 1. the overhead is learned from settled samples -------------------------------------

_LEARNED = DomainMemo(overhead=OVERHEAD, overhead_seen=60 * MiB)


@pytest.mark.parametrize(
    ("memo", "current", "stats_at", "observed", "used", "learned"),
    [
        # balloon seen at this size last tick, statistics sampled after: learn what is seen
        (
            DomainMemo(seen_current=286 * MiB, current_since=NOW - 5),
            286 * MiB,
            NOW - 1,
            OVERHEAD,
            OVERHEAD,
            OVERHEAD,
        ),
        # ... also when the target in force is reached (within the reach tolerance)
        (
            DomainMemo(seen_current=286 * MiB, current_since=NOW - 5, target=286 * MiB + 4096),
            286 * MiB,
            NOW - 1,
            OVERHEAD,
            OVERHEAD,
            OVERHEAD,
        ),
        # balloon moved since the last tick: the learned value stands, the reading is not learned
        (
            _LEARNED._replace(seen_current=280 * MiB, current_since=NOW - 5),
            286 * MiB,
            NOW - 1,
            20 * MiB,
            OVERHEAD,
            OVERHEAD,
        ),
        # statistics older than the balloon's arrival at this size: not learned
        (
            _LEARNED._replace(seen_current=286 * MiB, current_since=NOW - 5),
            286 * MiB,
            NOW - 6,
            20 * MiB,
            OVERHEAD,
            OVERHEAD,
        ),
        # a grow in flight (target in force far away): not settled
        (
            _LEARNED._replace(seen_current=286 * MiB, current_since=NOW - 5, target=295 * MiB),
            286 * MiB,
            NOW - 1,
            36 * MiB,
            OVERHEAD,
            OVERHEAD,
        ),
        # nothing learned yet: the largest plausible gap seen, not this tick's smaller one
        (DomainMemo(overhead_seen=OVERHEAD), 286 * MiB, NOW - 1, 20 * MiB, OVERHEAD, None),
        (DomainMemo(overhead_seen=20 * MiB), 286 * MiB, NOW - 1, OVERHEAD, OVERHEAD, None),
        # an implausible gap (`observed_overhead` 0) is never learned and keeps what was learned
        (
            _LEARNED._replace(seen_current=286 * MiB, current_since=NOW - 5),
            286 * MiB,
            NOW - 1,
            0,
            OVERHEAD,
            OVERHEAD,
        ),
        (DomainMemo(), 286 * MiB, NOW - 1, 0, 0, None),
    ],
)
def test_overhead_table(
    memo: DomainMemo, current: int, stats_at: float, observed: int, used: int, learned: int | None
) -> None:
    got_used, got_learned, got_seen = overhead_for(observed, memo, current, stats_at)
    assert (got_used, got_learned) == (used, learned)
    assert got_seen == (max(memo.overhead_seen or 0, observed) or None)


def test_the_lab_sequence_keeps_the_grow_in_flight() -> None:
    """Idle and settled, the guest teaches the core its 54.4 MiB; then it grows, and the
    lagging statistics in flight (45.8 and 36.2 MiB gaps) neither lower nor cancel the grow."""
    state = ControllerState.empty()
    used0 = int((256 * MiB - OVERHEAD) / 1.2)  # its want is its size: it stays put
    for at in (NOW - 20, NOW - 15):
        d, state = tick(256 * MiB, used0, OVERHEAD, state, at)
        assert not d.act, d.explanation
    assert state.memo(UUID).overhead == OVERHEAD
    d, state = tick(256 * MiB, 200 * MiB, OVERHEAD, state, NOW - 10)
    assert d.act and d.reason is Reason.GROW_DEMAND, d.explanation
    grown = d.target
    assert grown == int(200 * MiB * 1.2) + OVERHEAD
    for at, current, gap in (
        (NOW - 8, 250 * MiB, 36 * MiB),
        (NOW - 6, 286 * MiB, 45 * MiB),
        (NOW - 4, 286 * MiB, 36 * MiB),
    ):
        d, state = tick(current, 200 * MiB, gap, state, at)
        assert not d.act, d.explanation
        assert d.target == grown and state.memo(UUID).target == grown, d.explanation
        assert "+ 54.4 MiB not in MemTotal" in d.explanation, d.explanation


# --- 2. the grow cooldown ----------------------------------------------------------------


def _grown(current: int, target: int, ago: float) -> ControllerState:
    memo = DomainMemo(
        target=target,
        target_at=NOW - ago,
        grown_at=NOW - ago,
        seen_current=current,
        current_since=NOW - ago,
    )
    return ControllerState.of({UUID: memo})


@pytest.mark.parametrize(
    ("current", "in_force", "ago", "free", "act", "target"),
    [
        # reached a grow 10 s ago, demand fell: kept
        (300 * MiB, 300 * MiB, 10.0, 4 * GiB, False, 300 * MiB),
        # a grow in flight to 400 MiB, demand fell: the grow is not lowered
        (300 * MiB, 400 * MiB, 10.0, 4 * GiB, False, 400 * MiB),
        # the cooldown is over: the shrink proceeds (5 % step of 300 MiB)
        (300 * MiB, 300 * MiB, GROW_COOLDOWN + 1, 4 * GiB, True, 285 * MiB),
        # the host is below its reserve: it needs memory back, cooldown or not
        (300 * MiB, 300 * MiB, 10.0, 512 * MiB, True, 256 * MiB),
    ],
)
def test_cooldown_table(
    current: int, in_force: int, ago: float, free: int, act: bool, target: int
) -> None:
    # MemTotal is the balloon (no overhead) and demand is 100 MiB: wants its floor, 256 MiB.
    decision, _ = run(
        dom("d1", current, maxmem=MAXMEM, st=stats(100 * MiB, current)),
        free=free,
        policy=LAB,
        state=_grown(current, in_force, ago),
        now=NOW,
    )
    d = decision.domains[0]
    assert (d.act, d.target) == (act, target), d.explanation
    if not act:
        assert "kept up for 30 s after a grow" in d.explanation, d.explanation


def test_a_grow_for_demand_starts_the_cooldown_and_a_shrink_does_not() -> None:
    _, state = tick(256 * MiB, 230 * MiB, 0, ControllerState.empty(), NOW)
    assert state.memo(UUID).grown_at == NOW
    _, state = tick(400 * MiB, 100 * MiB, 0, ControllerState.empty(), NOW)
    assert state.memo(UUID).grown_at is None


# --- 3. no tiny move that lowers a grow in flight ----------------------------------------


@pytest.mark.parametrize(
    ("current", "in_force", "want", "act"),
    [
        # the lab's line: grow in flight to 295 MiB, want 820 B below the balloon: no move
        (286 * MiB, 295 * MiB, 286 * MiB - 820, False),
        # ... nor 6 MiB below it (within the 8 MiB deadband of the balloon)
        (286 * MiB, 295 * MiB, 280 * MiB, False),
        # well below the balloon: a real shrink, made (no grow cooldown in this state)
        (286 * MiB, 295 * MiB, 260 * MiB, True),
        # a shrink in flight to 280 MiB, now wanting 295 MiB: stopping it is made
        (300 * MiB, 280 * MiB, 295 * MiB, True),
        # raising a grow in flight: made
        (286 * MiB, 295 * MiB, 305 * MiB, True),
    ],
)
def test_deadband_of_the_balloon_table(current: int, in_force: int, want: int, act: bool) -> None:
    memo = DomainMemo(
        target=in_force, target_at=NOW - 2, seen_current=current, current_since=NOW - 2
    )
    policy = Policy(
        name="lab",
        floor=Amount(ratio=0.5),
        max_grow_step=None,
        deadband=Amount(size=8 * MiB),
        max_shrink_step=Amount(ratio=1.0),
    )
    used = int(want / 1.2) + 1
    decision, _ = run(
        dom("d1", current, maxmem=MAXMEM, st=stats(used, current)),
        policy=policy,
        state=ControllerState.of({UUID: memo}),
        now=NOW,
    )
    d = decision.domains[0]
    assert d.act is act, d.explanation
    assert d.target == (int(used * 1.2) if act else in_force), d.explanation


def test_the_cooldown_does_not_stop_sharing_by_weight() -> None:
    """Two guests grown for demand 10 s ago, both wanting more than the host can give: the
    cooldown keeps neither whole; the heavier one's buffer is taken from the lighter one's
    (the lighter one uses less than it holds: its share of what the needs leave is below its
    size)."""
    heavy = Policy(
        name="heavy",
        floor=Amount(ratio=0.5),
        max_grow_step=None,
        weight=3000,
        deadband=Amount(size=8 * MiB),
        max_shrink_step=Amount(size=64 * MiB),
    )
    light = Policy(
        name="light",
        floor=Amount(ratio=0.5),
        max_grow_step=None,
        weight=1000,
        deadband=Amount(size=8 * MiB),
        max_shrink_step=Amount(size=64 * MiB),
    )
    memo = {
        f"uuid-{n}": DomainMemo(
            target=384 * MiB,
            target_at=NOW - 10,
            grown_at=NOW - 10,
            seen_current=384 * MiB,
            current_since=NOW - 10,
        )
        for n in ("h", "l")
    }
    doms = [
        dom(n, 384 * MiB, maxmem=MAXMEM, st=stats(used, 384 * MiB))
        for n, used in (("h", 380 * MiB), ("l", 300 * MiB))
    ]
    decision, _ = run(
        *doms,
        free=1 * GiB + 16 * MiB,
        policy={"h": heavy, "l": light},
        state=ControllerState.of(memo),
        now=NOW,
    )
    h, lt = decision.domains
    assert h.target > 384 * MiB and h.reason is Reason.CONTENTION, h.explanation
    assert lt.act and lt.target < 384 * MiB and lt.reason is Reason.CONTENTION, lt.explanation


@pytest.mark.parametrize(
    ("current", "peak", "used", "act", "target"),
    [
        # the workload died: demand 60 MiB, held peak 300 MiB wants 360: not grown back
        (300 * MiB, 300 * MiB, 60 * MiB, False, 300 * MiB),
        # ... and not shrunk into the trough either (the peak holds it at its size)
        (340 * MiB, 300 * MiB, 60 * MiB, False, 340 * MiB),
        # demand itself beyond the balloon: grown on demand, as ever
        (300 * MiB, 300 * MiB, 290 * MiB, True, int(290 * MiB * 1.2)),
    ],
)
def test_the_held_peak_holds_but_never_grows(
    current: int, peak: int, used: int, act: bool, target: int
) -> None:
    memo = DomainMemo(peak=peak, peak_at=NOW - 5, seen_current=current, current_since=NOW - 5)
    decision, _ = run(
        dom("d1", current, maxmem=MAXMEM, st=stats(used, current)),
        policy=LAB,
        state=ControllerState.of({UUID: memo}),
        now=NOW,
    )
    d = decision.domains[0]
    assert (d.act, d.target) == (act, target), d.explanation
