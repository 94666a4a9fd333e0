"""Properties of the law over random inputs (hypothesis): what must hold whatever the guests say.

The reserve invariant, precisely: a domain's *commitment* is the largest of its current size,
the target the core issued earlier and has not seen reached (the state's promise), and a
hold's pinned target. Outstanding = sum over domains of (commitment - current). After a tick,
outstanding <= max(outstanding before the tick, host.free - reserve): the core never promises
memory the host does not have above its reserve, and when earlier promises already exceed it
(the host lost memory), it only ever reduces them.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from balloond.core import ControllerState
from balloond.model import DomainSnapshot, DomainState, Hold, MemoryStats, Reason
from balloond.policy.model import Policy
from balloond.units import GiB
from tests.support.decide import NOW, commitments, dom, run
from tests.support.fleets import fleets, policies, sizes


@st.composite
def garbage_stats(draw: st.DrawFn, maxmem: int) -> MemoryStats | None:
    """Balloon statistics that are wrong in at least one way the core must catch."""
    total = draw(st.integers(1, maxmem))
    avail = draw(st.integers(0, total - 1))
    fresh = NOW - draw(st.floats(0, 10))
    return draw(
        st.sampled_from(
            [
                None,
                MemoryStats(),
                MemoryStats(total=total),
                MemoryStats(available=avail),
                MemoryStats(total=0, available=avail, last_update=fresh),
                MemoryStats(total=-total, available=avail, last_update=fresh),
                MemoryStats(total=total, available=-avail - 1, last_update=fresh),
                MemoryStats(total=maxmem + total, available=avail, last_update=fresh),
                MemoryStats(total=total, available=total + avail, last_update=fresh),
                MemoryStats(total=total, available=avail, last_update=NOW - 16 - avail % 10**6),
                MemoryStats(total=total, available=avail, last_update=NOW + 16 + avail % 10**6),
                MemoryStats(total=total, available=avail, last_update=float("nan")),
            ]
        )
    )


@st.composite
def garbage_domain(draw: st.DrawFn) -> DomainSnapshot:
    maxmem = draw(sizes)
    current = draw(st.integers(1, maxmem))
    return dom("g", current, maxmem=maxmem, st=draw(garbage_stats(maxmem)))


@settings(max_examples=300, deadline=None)
@given(garbage_domain(), st.integers(0, 64 * GiB))
def test_garbage_stats_never_shrink_and_stay_within_floor_and_maxmem(
    d: DomainSnapshot, free: int
) -> None:
    decision, _ = run(d, free=free, reserve=1 * GiB)
    out = decision.domains[0]
    assert out.target >= d.current
    if out.act:  # only ever toward the floor (all the way when the host has the memory)
        assert d.current < out.target <= out.floor <= d.maxmem
        assert out.reason in (Reason.FLOOR, Reason.CONTENTION)
        assert out.target == out.floor or out.reason is Reason.CONTENTION
    else:
        assert out.target == d.current
        # Below its floor it would rise, but only with memory the host has above its reserve.
        assert out.reason is Reason.NO_DATA or (
            out.reason is Reason.CONTENTION and d.current < out.floor
        )


@settings(max_examples=300, deadline=None)
@given(fleets(), policies, st.integers(0, 32 * GiB), st.integers(0, 4 * GiB))
def test_reserve_is_never_promised_away(
    fleet: tuple[tuple[DomainSnapshot, ...], ControllerState, dict[str, Hold]],
    policy: Policy,
    free: int,
    reserve: int,
) -> None:
    domains, state, holds = fleet
    decision, after = run(
        *domains, free=free, reserve=reserve, policy=policy, state=state, holds=holds
    )
    before = commitments(decision, state, holds)
    assert commitments(decision, after, holds) <= max(before, free - reserve)
    assert decision.budget >= 0


@settings(max_examples=300, deadline=None)
@given(fleets(), policies, st.integers(0, 32 * GiB))
def test_actions_respect_floor_ceiling_and_busy_domains(
    fleet: tuple[tuple[DomainSnapshot, ...], ControllerState, dict[str, Hold]],
    policy: Policy,
    free: int,
) -> None:
    domains, state, holds = fleet
    decision, _ = run(*domains, free=free, reserve=GiB, policy=policy, state=state, holds=holds)
    for snap, out in zip(domains, decision.domains, strict=True):
        assert out.explanation
        if not out.act:
            continue
        assert snap.state is DomainState.RUNNING and snap.uuid not in holds
        assert out.target <= out.ceiling <= snap.maxmem
        if out.target < snap.current:
            assert out.target >= out.floor  # never shrunk below the floor


@settings(max_examples=100, deadline=None)
@given(
    fleets(),
    policies,
    st.integers(0, 16 * GiB),
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12),
)
def test_reserve_holds_over_many_ticks_as_balloons_move(
    fleet: tuple[tuple[DomainSnapshot, ...], ControllerState, dict[str, Hold]],
    policy: Policy,
    spare: int,
    moves: list[float],
) -> None:
    """A host of fixed size: free = total - used by guests. Each tick the guests move a
    random part of the way to their targets; the host never drops below its reserve through
    growth the core granted (it may start below, and then nothing grows)."""
    domains, _, _ = fleet
    state = ControllerState.empty()  # every promise in play is one this run made
    reserve = GiB
    total = sum(d.current for d in domains) + reserve + spare
    now = NOW
    targets: dict[str, int] = {}
    for move in moves:
        free = total - sum(d.current for d in domains)
        decision, state = run(
            *domains, free=free, reserve=reserve, policy=policy, state=state, now=now
        )
        for action in decision.actions:
            targets[action.uuid] = action.target
        now += 5.0
        moved = []
        for d in domains:
            goal = targets.get(d.uuid, d.current)
            step = int((goal - d.current) * move)
            # The guests keep saying what they said, freshly dated.
            rep = d.report and dataclasses.replace(d.report, received_at=now)
            stats = d.stats and dataclasses.replace(d.stats, last_update=now)
            moved.append(dataclasses.replace(d, current=d.current + step, report=rep, stats=stats))
        domains = tuple(moved)
        # Growth only ever comes out of memory above the reserve that nobody else was promised.
        assert total - sum(d.current for d in domains) >= min(reserve, free)
