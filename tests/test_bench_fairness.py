"""Who paid (issue 13): the fair share the benchmark measures against, its figures per guest,
and the oracle that keeps the fair share exactly on every shipped scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from balloond.bench.contenders.base import guest_configs
from balloond.bench.fairshare import fair_shares, givable
from balloond.bench.metrics import Recorder
from balloond.bench.runner import run
from balloond.sim.guest import KERNEL_USED, memmap_size
from balloond.sim.host import SimHost
from balloond.sim.scenario import parse_scenario
from balloond.units import GiB, MiB

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "bench" / "scenarios").glob("*.yaml"))

# Host 8 GiB - 1 GiB reserve = 7 GiB to give. Floors 1 + 1 + 0.5 GiB. A guest's need is its
# anonymous memory + 64 MiB of kernel + maxmem / 64 of struct pages.
THREE = """\
name: three
host: {{memory: 8GiB, reserve: 1GiB}}
duration: 10s
step: 1s
guests:
  - {{name: heavy, maxmem: 4GiB, initial: 3GiB, weight: 3000, floor: 1GiB,
      demand: {{anon: {heavy}, file: 0}}}}
  - {{name: light, maxmem: 4GiB, initial: 3GiB, weight: 1000, floor: 1GiB,
      demand: {{anon: {light}, file: 0}}}}
  - {{name: small, maxmem: 2GiB, initial: 1GiB, weight: 1000, floor: 512MiB,
      demand: {{anon: {small}, file: 0}}, behaviour: {small_behaviour}}}
"""


def host(heavy: str, light: str, small: str, small_behaviour: str = "ideal") -> SimHost:
    text = THREE.format(heavy=heavy, light=light, small=small, small_behaviour=small_behaviour)
    return SimHost(parse_scenario(text))


def need(sim: SimHost, name: str) -> int:
    return sim.guests[name].need_at(0.0)


def shares_of(sim: SimHost) -> dict[str, int]:
    needs = {name: need(sim, name) for name in sim.guests}
    configs = guest_configs(sim.scenario)
    return {name: share.fair for name, share in fair_shares(sim, configs, needs).items()}


def overhead(maxmem: int) -> int:
    """What a guest needs beyond its anonymous memory in the simulator (struct pages, kernel)."""
    return memmap_size(maxmem) + KERNEL_USED


def test_a_host_that_covers_every_need_gives_each_its_need() -> None:
    sim = host("1GiB", "1GiB", "256MiB")
    shares = shares_of(sim)
    assert shares["heavy"] == need(sim, "heavy") == GiB + overhead(4 * GiB)
    assert shares["small"] == 512 * MiB  # entitled to its floor though it needs less


def test_water_filled_by_weight_over_needs_above_the_floors() -> None:
    # Both want 4 GiB (their need is capped at maxmem); small is entitled to its floor only.
    # 7 - 2.5 GiB of floors = 4.5 GiB shared 3:1 above the floors: heavy's 3 GiB fit in its
    # three quarters (3.375), so it is full, and light gets what is left.
    sim = host("6GiB", "6GiB", "128MiB")
    assert shares_of(sim) == {"heavy": 4 * GiB, "light": int(2.5 * GiB), "small": 512 * MiB}


def test_what_a_guest_does_not_need_goes_to_the_others_by_weight() -> None:
    # heavy needs little; small (weight 1000, as light) is full at its maxmem within its half
    # of what heavy leaves; light gets the rest.
    sim = host("1GiB", "6GiB", "3GiB")
    shares = shares_of(sim)
    assert shares["heavy"] == need(sim, "heavy")
    assert shares["small"] == 2 * GiB
    assert shares["light"] == 7 * GiB - need(sim, "heavy") - 2 * GiB


def test_contended_shares_split_by_weight_when_nobody_is_full() -> None:
    # Nobody's need fits: floors, then 3:1:1 of the 4.5 GiB left.
    sim = host("3.8GiB", "3.5GiB", "1.5GiB")
    shares = shares_of(sim)
    left = int(4.5 * GiB)
    assert shares == {
        "heavy": GiB + left * 3000 // 5000,
        "light": GiB + left * 1000 // 5000,
        "small": 512 * MiB + left * 1000 // 5000,
    }
    assert sum(shares.values()) <= givable(sim, sim.active())


def test_a_stuck_balloon_keeps_what_it_holds_and_is_not_shared() -> None:
    sim = host("6GiB", "6GiB", "1.5GiB", small_behaviour="stuck")
    shares = shares_of(sim)
    assert shares["small"] == 1 * GiB  # what it holds, not what it needs
    movable = [g for g in sim.active() if g.spec.name != "small"]
    assert givable(sim, movable) == 6 * GiB  # 7 GiB less the stuck guest's 1 GiB
    assert shares == {"heavy": 4 * GiB, "light": 2 * GiB, "small": 1 * GiB}


def test_figures_per_guest_name_who_paid() -> None:
    # heavy and light both start at 3 GiB; heavy needs 3.5 GiB + overhead, light 0.5 GiB +
    # overhead: the host covers both, so heavy's whole shortfall is unfair.
    sim = host("3.5GiB", "0.5GiB", "128MiB")
    recorder = Recorder(sim, guest_configs(sim.scenario))
    sim.step(0.0)
    recorder.sample()
    figures = recorder.figures("three", "nobody")
    by_name = {g.name: g for g in figures.guests}
    short = need(sim, "heavy") - 3 * GiB
    assert by_name["heavy"].shortfall_mean_bytes == short
    assert by_name["heavy"].unfair_shortfall_mean_bytes == short
    assert by_name["light"].shortfall_mean_bytes == 0
    assert by_name["heavy"].weight == 3000
    total_need = sum(need(sim, n) for n in sim.guests)
    assert figures.unfair_shortfall_ratio == pytest.approx(short / total_need, abs=1e-6)
    assert figures.contention_s == 0.0


def test_a_shortfall_the_host_cannot_cover_is_not_unfair() -> None:
    # Everyone needs more than the host has; each holds exactly its fair share.
    sim = host("3.8GiB", "3.5GiB", "1.5GiB")
    for name, share in shares_of(sim).items():
        sim.guests[name].current = share
    recorder = Recorder(sim, guest_configs(sim.scenario))
    recorder.sample()
    figures = recorder.figures("three", "fair")
    assert all(g.shortfall_mean_bytes > 0 for g in figures.guests)
    assert all(g.unfair_shortfall_mean_bytes == 0 for g in figures.guests)
    assert figures.unfair_shortfall_ratio == 0.0
    assert figures.contention_s == 1.0


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_oracle_keeps_the_fair_share_exactly(path: Path) -> None:
    from balloond.sim.scenario import load_scenario

    result = run(load_scenario(path), "oracle")
    for name, series in result.series.items():
        late = [
            (t, e - c)
            for t, e, c in zip(series.t, series.entitled, series.current, strict=True)
            if c < e
        ]
        assert not late, f"{name} below min(need, fair share) at (t, bytes) {late[:5]}"
    assert result.figures.unfair_shortfall_ratio == 0.0
    assert result.figures.oom_events == 0
