"""The simulated guest model: stall below the working set, swap, OOM, stuck balloons."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from balloond.sim.guest import KERNEL_USED, SimGuest, memmap_size
from balloond.sim.scenario import GuestSpec, Trace
from balloond.units import GiB, MiB


def make_guest(**overrides: object) -> SimGuest:
    fields: dict[str, object] = {
        "name": "g",
        "maxmem": 4 * GiB,
        "anon": Trace.constant(1 * GiB),
        "file": Trace.constant(256 * MiB),
        "cache_fill": 0,
    }
    fields.update(overrides)
    return SimGuest(GuestSpec(**fields), "test", domain_id=1)  # type: ignore[arg-type]


def run(guest: SimGuest, seconds: int, start: float = 0.0) -> None:
    for i in range(seconds):
        guest.step(start + i, 1.0, 1000.0 + start + i)


def test_need_is_memmap_kernel_anon_and_file() -> None:
    guest = make_guest()
    assert guest.need_at(0) == memmap_size(4 * GiB) + KERNEL_USED + 1 * GiB + 256 * MiB


def test_no_stall_at_or_above_need() -> None:
    guest = make_guest()
    guest.set_target(guest.need_at(0))
    run(guest, 30)
    assert guest.current == guest.need_at(0)
    assert guest.truth.stall_some == 0.0
    assert guest.swap_in == 0
    assert guest.report() is not None and guest.report().psi_some == 0.0  # type: ignore[union-attr]


def test_cache_shortfall_stalls_a_little_anon_shortfall_a_lot() -> None:
    cache_short = make_guest()
    cache_short.set_target(cache_short.need_at(0) - 128 * MiB)
    run(cache_short, 30)
    anon_short = make_guest()
    anon_short.set_target(anon_short.need_at(0) - 256 * MiB - 128 * MiB)
    run(anon_short, 30)
    assert 0 < cache_short.truth.stall_some < 0.2
    assert cache_short.truth.swapped == 0
    assert anon_short.truth.stall_some > 2 * cache_short.truth.stall_some
    assert anon_short.truth.swapped == 128 * MiB
    assert anon_short.stats().swap_in is not None and anon_short.stats().swap_in > 0
    assert anon_short.major_faults > 0


def test_balloon_moves_at_a_finite_rate_and_maxmem_caps() -> None:
    guest = make_guest()
    guest.set_target(2 * GiB)
    run(guest, 1)
    assert guest.current == 4 * GiB - 256 * MiB
    run(guest, 20)
    assert guest.current == 2 * GiB
    guest.set_target(64 * GiB)
    assert guest.target == 4 * GiB


def test_stuck_guest_never_moves() -> None:
    guest = make_guest(behaviour="stuck")
    guest.set_target(2 * GiB)
    run(guest, 60)
    assert guest.current == 4 * GiB


def test_oom_when_anon_exceeds_current_plus_swap() -> None:
    anon = Trace(((0, 512 * MiB), (10, 512 * MiB), (11, 3 * GiB)))
    guest = make_guest(anon=anon, swap=512 * MiB, initial=1 * GiB)
    run(guest, 10)
    assert guest.oom_events == 0
    run(guest, 5, start=10)
    assert guest.oom_events == 1
    assert guest.truth.oom and guest.truth.stall_some == 1.0
    run(guest, 30, start=15)  # still short: the killer runs again every OOM_REPEAT seconds
    assert guest.oom_events >= 3


def test_balloon_stops_rather_than_oom_kill() -> None:
    guest = make_guest(anon=Trace.constant(3 * GiB), swap=256 * MiB)
    guest.set_target(1 * GiB)
    run(guest, 60)
    assert guest.oom_events == 0
    assert guest.current == memmap_size(4 * GiB) + KERNEL_USED + 3 * GiB - 256 * MiB


def test_memory_stats_look_like_virtio_balloon() -> None:
    guest = make_guest(cache_fill=10 * MiB)
    run(guest, 10)
    stats = guest.stats()
    assert stats.total == 4 * GiB - memmap_size(4 * GiB)
    assert stats.disk_caches == 256 * MiB + 100 * MiB
    assert stats.available == stats.total - KERNEL_USED - 1 * GiB  # cache counts as available
    assert stats.unused == stats.available - stats.disk_caches
    assert stats.last_update == 1009.0


def test_lying_agent_reports_more_than_it_uses() -> None:
    honest = make_guest()
    liar = make_guest(behaviour="lies", lies_factor=3.0)
    run(honest, 2)
    run(liar, 2)
    honest_report, liar_report = honest.report(), liar.report()
    assert honest_report is not None and liar_report is not None
    assert honest_report.demand == KERNEL_USED + 1 * GiB  # MemTotal - MemAvailable
    assert liar_report.demand == 3 * honest_report.demand
    assert liar.stats() == honest.stats()  # the balloon driver does not lie


def test_no_agent_no_report() -> None:
    guest = make_guest(agent=False)
    run(guest, 2)
    assert guest.report() is None


def test_demand_rise_is_swapped_back_in_once_memory_returns() -> None:
    anon = Trace(((0, 1 * GiB), (5, 2 * GiB)))
    guest = make_guest(anon=anon, initial=2 * GiB)
    run(guest, 10)
    assert guest.truth.swapped > 0
    guest.set_target(4 * GiB)
    run(guest, 60, start=10)
    assert guest.truth.swapped == 0 and guest.truth.stall_some == 0.0


sizes = st.integers(min_value=0, max_value=6 * GiB)


@settings(max_examples=60, deadline=None)
@given(
    anon=st.lists(sizes, min_size=1, max_size=5),
    file=sizes,
    targets=st.lists(st.integers(min_value=0, max_value=8 * GiB), min_size=1, max_size=6),
    behaviour=st.sampled_from(["ideal", "stuck", "slow", "lies"]),
)
def test_invariants_hold_for_any_workload_and_targets(
    anon: list[int], file: int, targets: list[int], behaviour: str
) -> None:
    trace = Trace(tuple((i * 10.0, a) for i, a in enumerate(anon)))
    guest = make_guest(
        anon=trace, file=Trace.constant(file), behaviour=behaviour, cache_fill=4 * MiB
    )
    swap_in = 0
    for i, target in enumerate(targets):
        guest.set_target(target)
        run(guest, 7, start=i * 7.0)
        assert 0 <= guest.current <= guest.maxmem
        assert 0.0 <= guest.truth.stall_some <= 1.0
        assert 0 <= guest.truth.swapped <= guest.spec.swap
        stats = guest.stats()
        assert stats.total is not None and stats.available is not None
        assert 0 <= stats.available <= stats.total
        assert stats.swap_in is not None and stats.swap_in >= swap_in  # cumulative
        swap_in = stats.swap_in
        if guest.current >= guest.truth.need:
            assert guest.truth.stall_some == 0.0 or guest.truth.swapped > 0
