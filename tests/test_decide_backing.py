"""Balloon memory the host does not back yet (balloon + QEMU overhead - QEMU rss) counts as
taken, not free.

The real-VM lab's contention run: host free counted the untouched part of the guests' balloons
as free, the guests then touched it with no grant, and the budget the core shared out shrank
from 224 MiB to ~100 MiB under the heavier guest's workload (OOM-killed)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balloond.core import ControllerState
from balloond.core.backing import (
    OVERHEAD_BASE,
    RSS_SLACK,
    learn,
    untouched,
)
from balloond.core.state import Backing
from balloond.model import DomainSnapshot, DomainState, Hold, MemoryStats, Reason
from balloond.units import GiB, MiB
from tests.support.decide import by_name, commitments, dom, report, run
from tests.support.fleets import fleets, policies

RESERVE = GiB


def with_rss(d: DomainSnapshot, rss: int | None) -> DomainSnapshot:
    base = d.stats if d.stats is not None else MemoryStats()
    return dataclasses.replace(d, stats=dataclasses.replace(base, rss=rss))


def held(name: str, current: int, rss: int | None, **kw: object) -> tuple[DomainSnapshot, Hold]:
    """A domain the core leaves alone (held), so only its rss can move the budget."""
    d = with_rss(dom(name, current, used=current // 2, **kw), rss)  # type: ignore[arg-type]
    return d, Hold(d.uuid, owner="test", reason="", until=None)


def budget_with(
    rss: int | None,
    *,
    free: int = RESERVE + GiB,
    current: int = 512 * MiB,
    maxmem: int = 4 * GiB,
    state: DomainState = DomainState.RUNNING,
) -> int:
    d, hold = held("idle", current, rss, maxmem=maxmem, state=state)
    decision, _ = run(d, free=free, reserve=RESERVE, holds={d.uuid: hold})
    return decision.budget


def test_untouched_balloon_memory_reduces_the_budget() -> None:
    # Balloon 512 MiB, QEMU backs 300 MiB of it: 212 MiB will be taken without any grant.
    assert budget_with(None) == GiB
    assert budget_with(300 * MiB) == GiB - 212 * MiB


def test_fully_backed_or_overhead_above_the_balloon_changes_nothing() -> None:
    assert budget_with(512 * MiB) == GiB
    assert budget_with(512 * MiB + 60 * MiB) == GiB  # QEMU overhead on top of a touched balloon


@pytest.mark.parametrize("rss", [0, -300 * MiB, 4 * GiB + RSS_SLACK + 1, 10**15])
def test_garbage_rss_is_ignored(rss: int) -> None:
    assert budget_with(rss) == GiB


def test_rss_at_the_edge_of_plausible_is_believed() -> None:
    d = with_rss(dom("x", 8 * GiB, maxmem=8 * GiB), 8 * GiB + RSS_SLACK)
    assert untouched(d) == 0
    small = with_rss(dom("y", 512 * MiB, maxmem=512 * MiB), 1)
    assert untouched(small) == 512 * MiB - 1


def test_only_alive_domains_count() -> None:
    assert budget_with(300 * MiB, state=DomainState.PAUSED) == GiB - 212 * MiB
    assert budget_with(300 * MiB, state=DomainState.SHUTOFF) == GiB
    gone = with_rss(dom("z", 512 * MiB, state=DomainState.CRASHED), 100 * MiB)
    assert untouched(gone) == 0
    assert untouched(dom("n", 512 * MiB)) == 0  # no stats at all


def test_growth_is_cut_by_the_untouched_part_of_another_balloon() -> None:
    idle, hold = held("idle", 512 * MiB, 300 * MiB)
    hungry = dom("hungry", GiB, rep=report(2 * GiB))
    before, _ = run(
        dataclasses.replace(idle, stats=dataclasses.replace(idle.stats, rss=None)),
        hungry,
        free=RESERVE + 300 * MiB,
        reserve=RESERVE,
        holds={idle.uuid: hold},
    )  # type: ignore[arg-type]
    after, _ = run(idle, hungry, free=RESERVE + 300 * MiB, reserve=RESERVE, holds={idle.uuid: hold})
    assert by_name(before)["hungry"].target == GiB + 300 * MiB
    grown = by_name(after)["hungry"]
    assert grown.act and grown.target == GiB + 88 * MiB
    assert grown.reason is Reason.CONTENTION
    assert any("not yet backed" in note for note in after.notes)
    assert after.host_free == RESERVE + 300 * MiB  # the decision still shows what the host said


def test_a_guest_touching_granted_memory_is_not_granted_again() -> None:
    """The lab's failure as two ticks: a grant reached the balloon but is not touched yet, so
    host free has not dropped. Without rss the same memory looked free again."""
    grown = dom("g", 512 * MiB + 200 * MiB, used=600 * MiB, rep=report(600 * MiB))
    other = dom("o", 512 * MiB, rep=report(2 * GiB))
    free = RESERVE + 200 * MiB  # the 200 MiB just granted to g, still counted free by the host
    blind, _ = run(grown, other, free=free, reserve=RESERVE)
    seeing, _ = run(
        with_rss(grown, 512 * MiB), with_rss(other, 512 * MiB), free=free, reserve=RESERVE
    )
    assert by_name(blind)["o"].target > 512 * MiB  # promised the same memory twice
    assert by_name(seeing)["o"].target == 512 * MiB and not by_name(seeing)["o"].act
    assert seeing.budget == 0


def test_a_deficit_is_still_judged_on_what_the_host_has_now() -> None:
    # Untouched balloons are counted as taken for grants, but do not make idle guests give
    # back at once (the host is not short yet): no deficit note.
    idle = with_rss(dom("i", 2 * GiB, used=256 * MiB, rep=report(256 * MiB)), 256 * MiB)
    decision, _ = run(idle, free=RESERVE + 64 * MiB, reserve=RESERVE)
    assert not any("below the reserve" in note for note in decision.notes)
    assert decision.budget == 0


@st.composite
def rss_fleets(
    draw: st.DrawFn,
) -> tuple[tuple[DomainSnapshot, ...], ControllerState, dict[str, Hold]]:
    domains, state, holds = draw(fleets())
    out = []
    for d in domains:
        rss = draw(st.none() | st.integers(-GiB, d.maxmem + 2 * RSS_SLACK))
        out.append(with_rss(d, rss))
    # Overheads learned earlier, some for the process running now, some for an older one.
    learned = {
        d.uuid: Backing(
            draw(st.sampled_from([d.id, None, 7])),
            draw(st.integers(0, OVERHEAD_BASE + d.maxmem)),
            draw(st.sampled_from([d.current, d.current + MiB])),
        )
        for d in out
        if draw(st.booleans())
    }
    return tuple(out), ControllerState.of(dict(state.domains), learned), holds


@settings(max_examples=300, deadline=None)
@given(rss_fleets(), policies, st.integers(0, 32 * GiB), st.integers(0, 4 * GiB))
def test_reserve_and_untouched_balloons_are_never_promised_away(
    fleet: tuple[tuple[DomainSnapshot, ...], ControllerState, dict[str, Hold]],
    policy: object,
    free: int,
    reserve: int,
) -> None:
    domains, state, holds = fleet
    decision, after = run(
        *domains, free=free, reserve=reserve, policy=policy, state=state, holds=holds
    )  # type: ignore[arg-type]
    before = commitments(decision, state, holds)
    room = free - reserve - sum(untouched(d, after.backing.get(d.uuid)) for d in domains)
    assert commitments(decision, after, holds) <= max(before, room)
    assert decision.budget == 0 or decision.budget <= room
    assert decision.budget >= 0


# --- QEMU's own share of its rss, learned per process ------------------------------------

OVERHEAD = 100 * MiB  # what the lab's TCG QEMU keeps for itself next to a 512 MiB guest


def qemu(
    current: int,
    rss: int | None,
    *,
    dom_id: int | None = 5,
    state: DomainState = DomainState.RUNNING,
) -> DomainSnapshot:
    return with_rss(dom("q", current, maxmem=512 * MiB, state=state, id=dom_id), rss)


def test_the_overhead_is_learned_from_a_full_guest_whose_balloon_stood_still() -> None:
    full = qemu(256 * MiB, 256 * MiB + OVERHEAD)
    opened = learn(full, None)  # first sight: did the balloon move? unknown: nothing learned
    assert opened == Backing(5, 0, 256 * MiB)
    assert learn(full, opened) == Backing(5, OVERHEAD, 256 * MiB)
    moved = Backing(5, 0, 300 * MiB)  # the balloon was at 300 MiB a tick ago
    assert learn(full, moved) == Backing(5, 0, 256 * MiB)
    assert untouched(qemu(256 * MiB, 256 * MiB + OVERHEAD), opened) == 0


@pytest.mark.parametrize("gap", [0, -40 * MiB, OVERHEAD_BASE + 64 * MiB + 1])
def test_gaps_that_are_not_qemu_overhead_teach_nothing(gap: int) -> None:
    # <= 0: the guest has not touched all its balloon; above the cap: not QEMU's own memory.
    d = qemu(256 * MiB, 256 * MiB + gap)
    assert learn(d, Backing(5, 0, 256 * MiB)) == Backing(5, 0, 256 * MiB)
    if gap <= 0:
        assert learn(d, None) is None  # no entry at all (the simulator, Xen)


def test_the_largest_gap_is_kept_and_a_new_process_starts_again() -> None:
    known = Backing(5, OVERHEAD, 300 * MiB)
    assert learn(qemu(300 * MiB, 300 * MiB + 60 * MiB), known) is known
    assert learn(qemu(300 * MiB, 420 * MiB), known) == Backing(5, 120 * MiB, 300 * MiB)
    assert learn(qemu(300 * MiB, None), known) is known  # no rss this tick: kept
    assert learn(qemu(300 * MiB, 200 * MiB, dom_id=6), known) is None  # restored: new process
    assert learn(qemu(300 * MiB, 360 * MiB, dom_id=6), known) == Backing(6, 0, 300 * MiB)
    assert learn(qemu(300 * MiB, 360 * MiB, state=DomainState.SHUTOFF), known) is None


def test_untouched_counts_the_learned_overhead_of_the_same_process_only() -> None:
    # The lab: a guest full at 256 MiB (rss 356) granted 130 MiB it has not touched yet.
    grown = qemu(386 * MiB, 356 * MiB)
    assert untouched(grown) == 30 * MiB  # what rss alone shows
    assert untouched(grown, Backing(5, OVERHEAD, 256 * MiB)) == 130 * MiB
    assert untouched(grown, Backing(4, OVERHEAD, 256 * MiB)) == 30 * MiB  # another process
    assert untouched(qemu(386 * MiB, 500 * MiB), Backing(5, OVERHEAD, 256 * MiB)) == 0


def test_a_grant_to_a_full_guest_is_counted_taken_until_it_is_touched() -> None:
    """The lab's contention run as ticks: two guests full at their floor; the first is
    granted 130 MiB. Without the overhead, host free still showed 100 of those MiB as free
    and promised them to the second guest as well."""
    free = RESERVE + 200 * MiB
    c1 = dataclasses.replace(qemu(256 * MiB, 256 * MiB + OVERHEAD), name="c1", uuid="u1")
    hungry = dom("c2", 256 * MiB, maxmem=512 * MiB, rep=report(500 * MiB))
    hold = {"u1": Hold("u1", owner="test", reason="", until=None)}
    state = ControllerState.empty()
    for _ in range(2):  # first sight, then the balloon stood still: learned
        _, state = run(c1, hungry, free=free, reserve=RESERVE, state=state, holds=hold)
    assert state.backing["u1"] == Backing(5, OVERHEAD, 256 * MiB)
    granted = dataclasses.replace(c1, current=386 * MiB)  # rss unchanged: nothing touched yet
    seeing, state = run(granted, hungry, free=free, reserve=RESERVE, state=state, holds=hold)
    blind, _ = run(granted, hungry, free=free, reserve=RESERVE, holds=hold)
    assert by_name(blind)["c2"].target == 256 * MiB + 170 * MiB  # 200 - (386 - 356)
    assert by_name(seeing)["c2"].target == 256 * MiB + 70 * MiB  # 200 - 130
    touched = dataclasses.replace(
        granted, stats=dataclasses.replace(granted.stats, rss=386 * MiB + OVERHEAD)
    )  # type: ignore[arg-type]
    # The guest touched its grant and host free fell by as much: the same room, no more.
    after, _ = run(touched, hungry, free=free - 130 * MiB, reserve=RESERVE, state=state, holds=hold)
    assert by_name(after)["c2"].target == 256 * MiB + 70 * MiB


def test_learned_overheads_survive_a_restart_and_garbage_is_dropped() -> None:
    state = ControllerState.of({}, {"u1": Backing(5, OVERHEAD, GiB), "u2": Backing(None, MiB, 0)})
    data = state.to_dict()
    assert ControllerState.from_dict(data).backing == state.backing
    data["backing"] = {
        "u1": [5, -1, 0],
        "u2": "x",
        "u3": [True, 1, 1],
        "u4": [1, 2],
        5: [1, 1, 1],
        "u6": [1, 1, 2**70],
        "u5": [3, 64 * MiB, GiB],
    }
    assert dict(ControllerState.from_dict(data).backing) == {"u5": Backing(3, 64 * MiB, GiB)}
    assert ControllerState.from_dict({"domains": {}, "backing": []}).backing == {}
    assert "u1" not in state.forget("u1").backing
    assert state.forget_target("u1").backing == state.backing
