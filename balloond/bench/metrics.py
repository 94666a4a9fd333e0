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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from balloond.sim.guest import SimGuest
from balloond.sim.host import SimHost
from balloond.units import MiB

RISE_CHUNK = 60.0  # seconds
RISE_MIN = 64 * MiB
TOLERANCE = 0.01  # a balloon within 1 % of the need counts as covering it


@dataclass(frozen=True, slots=True)
class Figures:
    """One record of `balloond bench --json` (keys exactly as issue 7 names them)."""

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
    maxmem: int = 0


class Recorder:
    """Samples the host after every step."""

    def __init__(self, sim: SimHost) -> None:
        self.sim = sim
        self.guests: list[SimGuest] = [*sim.guests.values(), *sim.pending]
        self.series: dict[str, Series] = {g.spec.name: Series(maxmem=g.maxmem) for g in self.guests}
        self.steps = 0
        self.reclaimed_sum = 0.0
        self.stall_sum = 0.0
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
        for guest in active:
            series = self.series[guest.spec.name]
            series.t.append(sim.t)
            series.need.append(guest.truth.need)
            series.current.append(guest.current)
            series.target.append(guest.target)
            series.stall.append(guest.truth.stall_some)

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
