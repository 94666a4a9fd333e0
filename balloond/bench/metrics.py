"""From what the simulated guests really experienced to the figures of issue 7.

- `reclaimed_ratio`: time-average of Σ(maxmem - current) / Σ maxmem over running guests.
- `stall_mean_ratio`: time-average over steps of the mean PSI-some-like stall of the running
  guests; `stall_worst_ratio`: the time-averaged stall of the worst guest.
- `oom_events`, `swap_in_bytes`: summed over guests (the guests' own counters).
- `reaction_p50_s` / `reaction_p95_s`: for every demand rise (a run of rising need, cut into
  pieces of at most RISE_CHUNK seconds, that rises by at least RISE_MIN), the time from the
  start of the rise until the balloon covers the need for good: from then to the end of the
  rise it holds at least the need (the size at which the guest runs without stall, kernel
  included; capped by maxmem; within TOLERANCE), or, if it was short at the end of the rise,
  until it first holds what the rise reached. A rise never covered counts until the guest or
  the scenario ends. None when a scenario has no rise.
- `ops_per_guest_hour`: balloon target changes issued per hour of guest running time.
- `reserve_violations`: steps (seconds, at the usual 1 s step) with host free below reserve.

Who paid (issue 13), with the fair share of `balloond.bench.fairshare` computed at every step:
- `weighted_stall_ratio`: time-average over steps of the running guests' stall averaged with
  their weights (Σ weight x stall / Σ weight);
- `unfair_shortfall_ratio`: time-average over steps of Σ over running guests of
  max(0, min(need, fair share) - current) / Σ of their need;
- `oom_below_fair_share`: OOM events of guests that held less than min(need, fair share)
  when the killer ran;
- `contention_s`: seconds in which the host could not cover every movable guest's need;
- `guests`: per guest `name`, `weight`, `stall_mean_ratio`, `oom_events`,
  `oom_below_fair_share`, `shortfall_mean_bytes` (time-average of max(0, need - current))
  and `unfair_shortfall_mean_bytes` (of max(0, min(need, fair share) - current)), each over
  the seconds the guest ran.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from balloond.bench.contenders.base import GuestConfig
from balloond.bench.fairshare import fair_shares
from balloond.sim.guest import SimGuest
from balloond.sim.host import SimHost
from balloond.units import MiB

RISE_CHUNK = 60.0  # seconds
RISE_MIN = 64 * MiB
TOLERANCE = 0.01  # a balloon within 1 % of the need counts as covering it


@dataclass(frozen=True, slots=True)
class GuestFigures:
    """One guest's share of a record (`guests` in `balloond bench --json`)."""

    name: str
    weight: int
    stall_mean_ratio: float
    oom_events: int
    oom_below_fair_share: int
    shortfall_mean_bytes: int
    unfair_shortfall_mean_bytes: int


@dataclass(frozen=True, slots=True)
class Figures:
    """One record of `balloond bench --json` (keys as issues 7 and 13 name them)."""

    scenario: str
    contender: str
    reclaimed_ratio: float
    stall_mean_ratio: float
    stall_worst_ratio: float
    oom_events: int
    swap_in_bytes: int
    reaction_p50_s: float | None
    reaction_p95_s: float | None
    ops_per_guest_hour: float
    reserve_violations: int
    weighted_stall_ratio: float = 0.0
    unfair_shortfall_ratio: float = 0.0
    oom_below_fair_share: int = 0
    contention_s: float = 0.0
    guests: tuple[GuestFigures, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Series:
    """One guest's time series, for reaction times and plots."""

    t: list[float] = field(default_factory=list)
    need: list[int] = field(default_factory=list)
    current: list[int] = field(default_factory=list)
    target: list[int] = field(default_factory=list)
    stall: list[float] = field(default_factory=list)
    entitled: list[int] = field(default_factory=list)  # min(need, fair share)
    maxmem: int = 0
    weight: int = 0


@dataclass
class Tally:
    """One guest's sums over the seconds it ran."""

    steps: int = 0
    stall: float = 0.0
    shortfall: int = 0
    unfair: int = 0
    oom_below_fair: int = 0
    ooms_seen: int = 0  # the guest's OOM counter at the last sample


class Recorder:
    """Samples the host after every step."""

    def __init__(self, sim: SimHost, configs: dict[str, GuestConfig]) -> None:
        self.sim = sim
        self.configs = configs
        self.guests: list[SimGuest] = [*sim.guests.values(), *sim.pending]
        self.series: dict[str, Series] = {
            g.spec.name: Series(maxmem=g.maxmem, weight=configs[g.spec.name].weight)
            for g in self.guests
        }
        self.tallies: dict[str, Tally] = {g.spec.name: Tally() for g in self.guests}
        self.steps = 0
        self.reclaimed_sum = 0.0
        self.stall_sum = 0.0
        self.weighted_stall_sum = 0.0
        self.unfair_sum = 0.0
        self.contended = 0
        self.violations = 0
        self.guest_seconds = 0.0
        self.ops = 0

    def sample(self) -> None:
        sim = self.sim
        active = list(sim.active())
        self.steps += 1
        if sim.free < sim.reserve:
            self.violations += 1
        if not active:
            return
        total = sum(g.maxmem for g in active)
        self.reclaimed_sum += sum(g.maxmem - g.current for g in active) / total
        self.stall_sum += sum(g.truth.stall_some for g in active) / len(active)
        self.guest_seconds += len(active) * sim.scenario.step
        weights = {g.spec.name: self.configs[g.spec.name].weight for g in active}
        self.weighted_stall_sum += sum(
            weights[g.spec.name] * g.truth.stall_some for g in active
        ) / sum(weights.values())
        shares = fair_shares(sim, self.configs, {g.spec.name: g.truth.need for g in active})
        self.contended += any(s.contended for s in shares.values())
        unfair_total = 0
        for guest in active:
            name, need = guest.spec.name, guest.truth.need
            entitled = shares[name].entitled(need)
            unfair = max(0, entitled - guest.current)
            unfair_total += unfair
            self._tally(guest, need, unfair)
            series = self.series[name]
            series.t.append(sim.t)
            series.need.append(need)
            series.current.append(guest.current)
            series.target.append(guest.target)
            series.stall.append(guest.truth.stall_some)
            series.entitled.append(entitled)
        self.unfair_sum += unfair_total / max(1, sum(g.truth.need for g in active))

    def _tally(self, guest: SimGuest, need: int, unfair: int) -> None:
        tally = self.tallies[guest.spec.name]
        tally.steps += 1
        tally.stall += guest.truth.stall_some
        tally.shortfall += max(0, need - guest.current)
        tally.unfair += unfair
        if guest.oom_events > tally.ooms_seen and unfair > 0:
            tally.oom_below_fair += guest.oom_events - tally.ooms_seen
        tally.ooms_seen = guest.oom_events

    def figures(self, scenario: str, contender: str) -> Figures:
        steps = max(1, self.steps)
        worst = max(
            (sum(s.stall) / len(s.stall) for s in self.series.values() if s.stall), default=0.0
        )
        reactions = [r for s in self.series.values() for r in reaction_times(s, self.sim)]
        hours = self.guest_seconds / 3600.0
        return Figures(
            scenario=scenario,
            contender=contender,
            reclaimed_ratio=round(self.reclaimed_sum / steps, 4),
            stall_mean_ratio=round(self.stall_sum / steps, 5),
            stall_worst_ratio=round(worst, 5),
            oom_events=sum(g.oom_events for g in self.guests),
            swap_in_bytes=sum(g.swap_in for g in self.guests),
            reaction_p50_s=_round(percentile(reactions, 0.50)),
            reaction_p95_s=_round(percentile(reactions, 0.95)),
            ops_per_guest_hour=round(self.ops / hours, 1) if hours > 0 else 0.0,
            reserve_violations=self.violations,
            weighted_stall_ratio=round(self.weighted_stall_sum / steps, 5),
            unfair_shortfall_ratio=round(self.unfair_sum / steps, 6),
            oom_below_fair_share=sum(t.oom_below_fair for t in self.tallies.values()),
            contention_s=self.contended * self.sim.scenario.step,
            guests=tuple(self._guest_figures(g) for g in self.guests),
        )

    def _guest_figures(self, guest: SimGuest) -> GuestFigures:
        name = guest.spec.name
        tally = self.tallies[name]
        steps = max(1, tally.steps)
        return GuestFigures(
            name=name,
            weight=self.configs[name].weight,
            stall_mean_ratio=round(tally.stall / steps, 5),
            oom_events=guest.oom_events,
            oom_below_fair_share=tally.oom_below_fair,
            shortfall_mean_bytes=tally.shortfall // steps,
            unfair_shortfall_mean_bytes=tally.unfair // steps,
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def rises(series: Series, step: float) -> list[tuple[int, int]]:
    """(start, end) indexes of demand rises: runs of rising need, cut into RISE_CHUNK pieces,
    that rise by at least RISE_MIN."""
    found: list[tuple[int, int]] = []
    need = series.need
    chunk = max(1, int(RISE_CHUNK / step))
    i = 1
    while i < len(need):
        if need[i] <= need[i - 1]:
            i += 1
            continue
        start = i - 1
        while i < len(need) and need[i] > need[i - 1] and i - start < chunk:
            i += 1
        end = i - 1
        if need[end] - need[start] >= RISE_MIN:
            found.append((start, end))
    return found


def reaction_times(series: Series, sim: SimHost) -> list[float]:
    step = sim.scenario.step
    return [(_caught_up(series, start, end) - start) * step for start, end in rises(series, step)]


def _covered(series: Series, k: int, level: int) -> bool:
    goal = min(series.maxmem, level)
    return series.current[k] >= goal - int(goal * TOLERANCE)


def _caught_up(series: Series, start: int, end: int) -> int:
    """The index from which the balloon covers the rising need for good: the start of the
    covered streak that reaches the end of the rise, else the first index after the rise at
    which it covers what the rise reached (or what is needed by then, if demand fell)."""
    need, current = series.need, series.current
    if _covered(series, end, need[end]):
        j = end
        while j > start and _covered(series, j - 1, need[j - 1]):
            j -= 1
        return j
    for j in range(end + 1, len(current)):
        if _covered(series, j, min(need[end], need[j])):
            return j
    return len(current)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
