"""Table tests of the control law, one situation per row, plain values, no hypervisor.

Defaults (Policy(name="default")): floor 25% of maxmem, ceiling maxmem, buffer 20%, shrink
step 5% of current, grow at once, deadband 16 MiB, pressure target 0.5%, swap guard on.
"""

from __future__ import annotations

import pytest

from balloond.model import DomainState, Hold, JobKind, MemoryStats, Reason
from balloond.policy.model import Amount, Policy
from balloond.units import GiB, KiB, MiB
from tests.support.decide import DEFAULT, NOW, by_name, dom, one, report, run

LOW_FLOOR = Policy(name="low-floor", floor=Amount(size=256 * MiB))


def test_idle_guest_shrinks_gently_toward_demand_plus_buffer() -> None:
    d = one(dom("idle", 2 * GiB, used=700 * MiB), policy=LOW_FLOOR)
    assert (d.reason, d.act) == (Reason.SHRINK_IDLE, True)
    assert d.target == 2 * GiB - int(2 * GiB * 0.05)  # one 5% step, not the 840 MiB goal
    assert d.demand == 700 * MiB
    assert "shrink 2 GiB → 1.9 GiB" in d.explanation
    assert "idle, demand 700 MiB + 20% buffer" in d.explanation
    assert "step limited to 5%" in d.explanation


def test_guest_short_of_demand_grows_at_once() -> None:
    d = one(dom("web", 1 * GiB, rep=report(900 * MiB)))
    assert (d.reason, d.act, d.target) == (Reason.GROW_DEMAND, True, int(900 * MiB * 1.2))


def test_guest_under_pressure_grows_beyond_its_reading() -> None:
    d = one(dom("web", 1 * GiB, rep=report(900 * MiB, psi=0.041)))
    # Stalled: its reading is capped by the balloon, so start from current and boost by
    # 5% per multiple of the pressure target (8.2 x 5% = 41%), then add the buffer.
    assert (d.reason, d.act) == (Reason.GROW_PRESSURE, True)
    assert d.target == int((GiB + int(GiB * 0.41)) * 1.2)
    assert d.pressure == pytest.approx(0.041)
    assert "grow 1 GiB → 1.7 GiB: pressure 4.1% > 0.5% target" in d.explanation


def test_a_move_between_sizes_that_round_alike_reads_as_a_move() -> None:
    # 4051 MiB renders "4.0 GiB" and 4096 MiB "4 GiB": the line read "grow 4.0 GiB → 4 GiB".
    d = one(dom("web", 4 * GiB - 45 * MiB, rep=report(3900 * MiB)))
    assert (d.reason, d.act, d.target) == (Reason.GROW_DEMAND, True, 4 * GiB)
    assert d.explanation.startswith("grow 3.96 GiB → 4.00 GiB: demand 3.8 GiB + 20% buffer")


def test_no_action_within_the_deadband() -> None:
    d = one(dom("web", 1 * GiB, rep=report(850 * MiB)))  # wants 1020 MiB: 4 MiB away
    assert (d.reason, d.act, d.target) == (Reason.STEADY, False, 1 * GiB)
    assert "within the deadband 16 MiB" in d.explanation


def test_below_floor_rises_to_floor_even_inside_the_deadband() -> None:
    policy = Policy(name="p", floor=Amount(size=1 * GiB), deadband=Amount(size=1 * GiB))
    d = one(dom("small", 512 * MiB, used=100 * MiB), policy=policy)
    assert (d.reason, d.act, d.target, d.floor) == (Reason.FLOOR, True, 1 * GiB, 1 * GiB)


def test_above_ceiling_shrinks_to_ceiling_at_once() -> None:
    policy = Policy(name="p", ceiling=Amount(size=2 * GiB))
    d = one(dom("big", 3 * GiB, rep=report(2500 * MiB)), policy=policy)
    assert (d.reason, d.act, d.target, d.ceiling) == (Reason.CEILING, True, 2 * GiB, 2 * GiB)


def test_ceiling_is_capped_by_maxmem() -> None:
    policy = Policy(name="p", ceiling=Amount(size=64 * GiB))
    d = one(dom("web", 1 * GiB, maxmem=2 * GiB, rep=report(1900 * MiB)), policy=policy)
    assert (d.ceiling, d.target) == (2 * GiB, 2 * GiB)


def test_floor_relative_to_maxmem() -> None:
    d = one(dom("web", 2 * GiB, maxmem=8 * GiB, used=100 * MiB))
    assert d.floor == 2 * GiB
    assert (d.reason, d.act, d.target) == (Reason.STEADY, False, 2 * GiB)


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        MemoryStats(),
        MemoryStats(total=0, available=0, last_update=NOW),
        MemoryStats(total=-1 * GiB, available=100, last_update=NOW),
        MemoryStats(total=2 * GiB, available=-5, last_update=NOW),
        MemoryStats(total=64 * GiB, available=1 * GiB, last_update=NOW),  # > maxmem
        MemoryStats(total=2 * GiB, available=3 * GiB, last_update=NOW),  # avail > total
        MemoryStats(total=2 * GiB, available=1 * GiB, last_update=NOW - 3600),  # stale
        MemoryStats(total=2 * GiB, available=1 * GiB, last_update=NOW + 3600),  # future
        MemoryStats(total=2 * GiB, available=1 * GiB, last_update=float("nan")),
    ],
)
def test_garbage_statistics_mean_no_data_and_no_move(garbage: MemoryStats | None) -> None:
    d = one(dom("g", 2 * GiB, st=garbage))
    assert (d.reason, d.act, d.target) == (Reason.NO_DATA, False, 2 * GiB)
    assert "no data" in d.explanation


@pytest.mark.parametrize(
    "bad_report",
    [
        report(10 * GiB),  # more than maxmem
        report(-1),
        report(0),
        report(1 * GiB, age=3600),  # stale
        report(1 * GiB, age=-3600),  # from the future
    ],
)
def test_garbage_reports_are_not_data(bad_report: object) -> None:
    d = one(dom("g", 2 * GiB, rep=bad_report))  # type: ignore[arg-type]
    assert (d.reason, d.act, d.target) == (Reason.NO_DATA, False, 2 * GiB)


def test_no_data_below_floor_still_rises_to_floor() -> None:
    d = one(dom("g", 512 * MiB, st=MemoryStats(total=-1, available=-1)))
    assert (d.reason, d.act, d.target) == (Reason.FLOOR, True, 1 * GiB)
    assert "no usable data" in d.explanation


def test_stale_report_falls_back_to_fresh_statistics() -> None:
    d = one(dom("g", 2 * GiB, rep=report(1900 * MiB, age=60), used=700 * MiB), policy=LOW_FLOOR)
    assert d.demand == 700 * MiB and d.reason is Reason.SHRINK_IDLE


@pytest.mark.parametrize(
    ("state", "job"),
    [
        (DomainState.PAUSED, None),
        (DomainState.SHUTDOWN, None),
        (DomainState.SHUTOFF, None),
        (DomainState.CRASHED, None),
        (DomainState.PMSUSPENDED, None),
        (DomainState.RUNNING, JobKind.MIGRATION),
        (DomainState.RUNNING, JobKind.SAVE),
    ],
)
def test_busy_domains_are_left_alone(state: DomainState, job: JobKind | None) -> None:
    d = one(dom("b", 512 * MiB, used=100 * MiB, state=state, job=job))
    assert (d.reason, d.act, d.target) == (Reason.BUSY, False, 512 * MiB)  # even below floor
    assert (job.value if job else state.value) in d.explanation


def test_hold_pins_its_target_and_names_its_owner() -> None:
    hold = Hold("uuid-h", owner="balloonctl balloon", reason="", until=NOW + 600, target=GiB)
    d = one(dom("h", 2 * GiB, used=100 * MiB), holds={"uuid-h": hold})
    assert (d.reason, d.act, d.target) == (Reason.HOLD, False, 1 * GiB)
    assert "held by balloonctl balloon until" in d.explanation


def test_hold_without_target_keeps_current_and_expired_hold_does_not_count() -> None:
    hold = Hold("uuid-h", owner="balloonctl migrate", reason="moving", until=None)
    d = one(dom("h", 2 * GiB, used=100 * MiB), holds={"uuid-h": hold})
    assert (d.reason, d.act, d.target) == (Reason.HOLD, False, 2 * GiB)
    expired = Hold("uuid-h", owner="x", reason="", until=NOW - 1)
    d = one(dom("h", 2 * GiB, used=100 * MiB), holds={"uuid-h": expired}, policy=LOW_FLOOR)
    assert d.reason is Reason.SHRINK_IDLE


def test_disabled_policy_leaves_domain_alone() -> None:
    policy = Policy(name="hands-off", enabled=False)
    d = one(dom("d", 512 * MiB, used=100 * MiB), policy=policy)
    assert (d.reason, d.act, d.policy) == (Reason.DISABLED, False, "hands-off")


def test_swap_guard_blocks_shrinking_a_swapping_guest() -> None:
    rep = report(300 * MiB, swap_in_rate=8.0 * KiB)  # swapping a little, no stall
    d = one(dom("s", 2 * GiB, rep=rep), policy=LOW_FLOOR)
    assert (d.reason, d.act, d.target) == (Reason.SWAP_GUARD, False, 2 * GiB)
    off = Policy(name="p", floor=Amount(size=256 * MiB), swap_guard=False)
    assert one(dom("s", 2 * GiB, rep=rep), policy=off).reason is Reason.SHRINK_IDLE


def test_swap_guard_from_balloon_counters_between_ticks() -> None:
    # MemFree is plentiful: the guest pages old memory back in, it is not short of any.
    calm = MemoryStats(
        total=2 * GiB, available=1700 * MiB, unused=1700 * MiB, swap_in=0, last_update=NOW - 11
    )
    _, state = run(dom("s", 2 * GiB, st=calm), policy=LOW_FLOOR, now=NOW - 10)
    swapping = MemoryStats(
        total=2 * GiB,
        available=1700 * MiB,
        unused=1700 * MiB,
        swap_in=100 * KiB,
        last_update=NOW - 1,
    )  # 10 KiB/s
    second = dom("s", 2 * GiB, st=swapping)
    d = one(second, policy=LOW_FLOOR, state=state)
    # The shrink issued on the first tick is called off: the target goes back to current.
    assert (d.reason, d.act, d.target) == (Reason.SWAP_GUARD, True, 2 * GiB)
    assert "swap guard" in d.explanation


def test_heavy_swap_in_counts_as_pressure() -> None:
    rep = report(900 * MiB, psi=None, swap_in_rate=4.0 * MiB)
    d = one(dom("s", 1 * GiB, rep=rep))
    assert d.reason is Reason.GROW_PRESSURE and d.target > int(GiB * 1.2)
    assert "swapping in 4 MiB/s" in d.explanation


def test_guest_request_is_honoured_within_floor_and_ceiling() -> None:
    d = one(dom("r", 1 * GiB, rep=report(500 * MiB, requested=3 * GiB)))
    assert (d.reason, d.act, d.target) == (Reason.GUEST_REQUEST, True, 3 * GiB)
    policy = Policy(name="p", ceiling=Amount(size=2 * GiB))
    liar = one(dom("r", 1 * GiB, rep=report(500 * MiB, requested=4 * GiB)), policy=policy)
    assert liar.target == 2 * GiB  # a lying guest gets at most its ceiling
    closed = Policy(name="p", self_adjust=False)
    ignored = one(dom("r", 1 * GiB, rep=report(900 * MiB, requested=3 * GiB)), policy=closed)
    assert ignored.reason is Reason.GROW_DEMAND and ignored.target == int(900 * MiB * 1.2)


def test_report_contradicted_by_statistics_is_not_believed() -> None:
    rep = report(3 * GiB)  # claims 3 GiB, kernel statistics show 500 MiB, no stall
    d = one(dom("liar", 2 * GiB, rep=rep, used=500 * MiB), policy=LOW_FLOOR)
    assert d.demand == 500 * MiB and d.reason is Reason.SHRINK_IDLE


def test_max_grow_step_limits_growth() -> None:
    policy = Policy(name="p", max_grow_step=Amount(size=256 * MiB))
    d = one(dom("w", 1 * GiB, rep=report(1000 * MiB, psi=0.05)), policy=policy)
    assert (d.act, d.target) == (True, 1 * GiB + 256 * MiB)
    assert "step limited to 256 MiB" in d.explanation


def test_contention_shares_growth_by_weight() -> None:
    heavy = Policy(name="heavy", weight=3000)
    light = Policy(name="light", weight=1000)
    decision, _ = run(
        dom("a", 1 * GiB, rep=report(500 * MiB, requested=4 * GiB)),
        dom("b", 1 * GiB, rep=report(500 * MiB, requested=4 * GiB)),
        free=3 * GiB,
        reserve=1 * GiB,
        policy={"a": heavy, "b": light},
    )
    a, b = by_name(decision)["a"], by_name(decision)["b"]
    # Pool: 2 GiB spare + 2 GiB held; floors 1 GiB each; the other 2 GiB split 3:1.
    assert (a.target, b.target) == (1 * GiB + 1536 * MiB, 1 * GiB + 512 * MiB)
    assert a.reason is b.reason is Reason.CONTENTION
    assert decision.budget == 0


def test_water_filling_gives_leftovers_to_the_hungry() -> None:
    decision, _ = run(
        dom("small", 1 * GiB, rep=report(1 * GiB, requested=1200 * MiB)),
        dom("big", 1 * GiB, rep=report(1 * GiB, requested=4 * GiB)),
        free=3 * GiB,
        reserve=1 * GiB,
    )
    small, big = by_name(decision)["small"], by_name(decision)["big"]
    assert small.target == 1200 * MiB and small.reason is Reason.GUEST_REQUEST
    assert big.target == 4 * GiB - 1200 * MiB and big.reason is Reason.CONTENTION


def test_host_below_reserve_shrinks_idle_guests_at_once_and_grows_nobody() -> None:
    decision, _ = run(
        dom("idle", 4 * GiB, maxmem=8 * GiB, rep=report(1 * GiB)),
        dom("hungry", 1 * GiB, rep=report(1 * GiB, psi=0.05)),
        free=512 * MiB,
        reserve=1 * GiB,
        policy=LOW_FLOOR,
    )
    idle, hungry = by_name(decision)["idle"], by_name(decision)["hungry"]
    assert (idle.act, idle.target) == (True, int(1 * GiB * 1.2))  # no 5% step
    assert hungry.act is False and hungry.reason is Reason.CONTENTION
    assert decision.notes and "below the reserve" in decision.notes[0]


def test_shrinks_are_listed_before_grows() -> None:
    decision, _ = run(
        dom("grow", 1 * GiB, rep=report(1 * GiB, psi=0.05)),
        dom("shrink", 3 * GiB, rep=report(200 * MiB)),
        policy=LOW_FLOOR,
    )
    assert [a.name for a in decision.actions] == ["shrink", "grow"]


def test_promised_memory_counts_as_taken_on_the_next_tick() -> None:
    a = dom("a", 1 * GiB, rep=report(1 * GiB, requested=2 * GiB))
    first, state = run(a, free=2 * GiB, reserve=1 * GiB)
    assert by_name(first)["a"].target == 2 * GiB
    assert state.promised("uuid-a", 1 * GiB) == 1 * GiB
    # Next tick a has not taken its gigabyte yet and is paused: the host still shows 1 GiB
    # above the reserve, but all of it is promised to a.
    paused = dom("a", 1 * GiB, state=DomainState.PAUSED)
    b = dom("b", 1 * GiB, rep=report(1 * GiB, requested=2 * GiB))
    second, _ = run(paused, b, free=2 * GiB, reserve=1 * GiB, state=state, now=NOW + 10)
    assert by_name(second)["b"].act is False
    assert by_name(second)["b"].reason is Reason.CONTENTION
    assert second.budget == 0


def test_promise_is_reshared_by_weight_when_a_newcomer_asks() -> None:
    a = dom("a", 1 * GiB, rep=report(1 * GiB, requested=2 * GiB))
    _, state = run(a, free=2 * GiB, reserve=1 * GiB)
    b = dom("b", 1 * GiB, rep=report(1 * GiB, requested=2 * GiB))
    second, _ = run(a, b, free=2 * GiB, reserve=1 * GiB, state=state, now=NOW + 10)
    # The one spare gigabyte is split evenly: a's promise shrinks to 512 MiB, b gets 512 MiB,
    # never 1 GiB each.
    assert by_name(second)["a"].target == by_name(second)["b"].target == 1536 * MiB


def test_implausible_domain_sizes_are_left_alone() -> None:
    d = one(dom("z", 0, maxmem=0, used=None))
    assert (d.reason, d.act) == (Reason.NO_DATA, False)


def test_every_decision_has_an_explanation() -> None:
    decision, _ = run(
        dom("a", 1 * GiB, rep=report(900 * MiB, psi=0.2)),
        dom("b", 2 * GiB, used=100 * MiB),
        dom("c", 2 * GiB),
        dom("d", 2 * GiB, state=DomainState.PAUSED),
        policy=DEFAULT,
    )
    for d in decision.domains:
        assert d.explanation and d.name


def test_a_paused_domains_pinned_size_counts_as_promised() -> None:
    # Found by the reserve property: a paused guest pinned at 64 MiB takes it when it
    # resumes, so the host's 48 MiB cannot also go to three guests growing to their floors.
    maxmem = 64 * MiB
    paused = dom("p", 1, maxmem=maxmem, state=DomainState.PAUSED)
    growers = [dom(f"g{i}", 1, maxmem=maxmem) for i in range(3)]
    pin = Hold("uuid-p", "balloonctl balloon", "", target=maxmem)
    decision, _ = run(paused, *growers, free=48 * MiB, reserve=0, holds={"uuid-p": pin})
    assert by_name(decision)["p"].reason is Reason.BUSY
    assert not decision.actions, [a.explanation for a in decision.actions]
