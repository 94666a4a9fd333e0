"""Signs of memory shortage in a guest: stall (PSI), swap-in and major-fault rates.

Two questions are asked of them each tick:

- is the guest *short* of memory? A stall above the policy's `pressure_target`, thrashing
  (heavy swap-in while pages also go out: swap-in alone is a guest taking back what it
  swapped out before, once it has room), or, without PSI, a storm of major faults beyond the
  swap-ins (the only other sign of thrashing). A short guest's need is pushed up
  (`need.pressed_need`) and its want boosted (`estimate.corrected`).
- has a shrink *touched* its working set? Weaker signs: a stall of a tenth of the pressure
  target, any sustained swapping (in, while pages also go out), or, soon after a shrink,
  major faults well above the guest's usual rate (busy guests read files all day). A touched
  guest is shrunk no further, and the page cache it still held is learned as demand
  (`estimate.learn_hidden`).

Rates come from the agent when it reports them, else from the balloon statistics' cumulative
counters of this tick and the previous one (kept in the memo).
"""

from __future__ import annotations

from balloond.core.state import DomainMemo
from balloond.model import GuestReport, MemoryStats
from balloond.units import PAGE

# A guest swapping in faster than this is short of memory (16 pages/s: more than noise).
SWAP_IN_SHORT = 16.0 * PAGE
# Any sustained swap-in (1 page/s) blocks shrinking when the policy's swap_guard is on.
SWAP_IN_GUARD = float(PAGE)
# Major faults also come from ordinary file reads; only a storm of them means "short".
MAJOR_FAULTS_SHORT = 200.0
# Signs that a shrink reached the working set: a stall of a tenth of the pressure target,
# or this many major faults per second within SHRINK_BLAME seconds of a shrink, and at least
# FAULT_BASE_FACTOR times the guest's usual rate (`DomainMemo.fault_base`).
TOUCH_FRACTION = 0.1
SHRINK_BLAME = 60.0
MAJOR_FAULTS_AFTER_SHRINK = 16.0
FAULT_BASE_FACTOR = 2.0
# Weight of each new reading in the usual major-fault rate.
FAULT_BASE_WEIGHT = 0.2
# An agent's rate at or above this is garbage (no rate), not a measurement.
MAX_RATE = 1e15


def pressure_of(report: GuestReport | None) -> float | None:
    """The stall ratio over the last report interval, else the kernel's 10 s average (a
    ratio outside [0, 1] is garbage: none)."""
    if report is None:
        return None
    for pressure in (report.psi_some, report.psi_some_avg10):
        if pressure is not None and 0.0 <= pressure <= 1.0:
            return pressure
    return None


def rate(
    agent: float | None,
    counter: int | None,
    before: int | None,
    counted_at: float | None,
    stats_at: float,
) -> float | None:
    """A rate per second: the agent's own when it gives one (garbage: none), else from a
    cumulative counter of the balloon statistics sampled at `stats_at` and its value
    `before`, sampled at `counted_at` (the memo's). No rate when either sample is missing,
    no time passed, or the counter went backwards (a guest reboot) or negative (garbage)."""
    if agent is not None:
        return agent if 0.0 <= agent < MAX_RATE else None
    if counter is None or before is None or counted_at is None:
        return None
    elapsed = stats_at - counted_at
    if elapsed <= 0.0 or counter < before or counter < 0:
        return None
    return (counter - before) / elapsed


def rates(
    report: GuestReport | None, stats: MemoryStats | None, memo: DomainMemo, stats_at: float
) -> tuple[float | None, float | None, float | None]:
    """(swap-in bytes/s, swap-out bytes/s, major faults/s), each as `rate` finds it from a
    fresh `report` (or None) and the balloon `stats` sampled at `stats_at` (whatever else
    they hold)."""
    agent_in = agent_out = agent_faults = swap_in = swap_out = faults = None
    if report is not None:
        agent_in, agent_out = report.swap_in_rate, report.swap_out_rate
        agent_faults = report.major_fault_rate
    if stats is not None:
        swap_in, swap_out, faults = stats.swap_in, stats.swap_out, stats.major_faults
    counted_at = memo.counters_at
    return (
        rate(agent_in, swap_in, memo.swap_in, counted_at, stats_at),
        rate(agent_out, swap_out, memo.swap_out, counted_at, stats_at),
        rate(agent_faults, faults, memo.major_faults, counted_at, stats_at),
    )


def swapping(swap_rate: float | None, out_rate: float | None, threshold: float) -> bool:
    """Pages swapped in at `threshold` bytes/s or more while pages also go out (without a
    swap-out figure, swap-in alone): thrashing, not a guest taking back what it swapped out
    before once it has room."""
    if swap_rate is None or swap_rate < threshold:
        return False
    return out_rate is None or out_rate >= threshold


def is_short(
    pressure: float | None,
    swap_rate: float | None,
    out_rate: float | None,
    fault_rate: float | None,
    pressure_target: float,
) -> bool:
    """Short of memory: a stall above the policy's target, thrashing, or, without PSI, a
    storm of major faults beyond the swap-ins (which major faults count too)."""
    if pressure is not None and pressure > pressure_target:
        return True
    if swapping(swap_rate, out_rate, SWAP_IN_SHORT):
        return True
    if pressure is not None or fault_rate is None:
        return False
    return fault_rate - (swap_rate or 0.0) / PAGE >= MAJOR_FAULTS_SHORT


def is_touched(
    pressure: float | None,
    swap_rate: float | None,
    out_rate: float | None,
    fault_rate: float | None,
    pressure_target: float,
    memo: DomainMemo,
    now: float,
) -> bool:
    """A shrink reached the working set (weaker signs than `is_short`). Soon after a shrink,
    major faults beyond what the guest's ordinary file reads explain are blamed on it."""
    if pressure is not None and pressure >= pressure_target * TOUCH_FRACTION:
        return True
    if swapping(swap_rate, out_rate, SWAP_IN_GUARD):
        return True
    if fault_rate is None or not shrunk_recently(memo, now):
        return False
    usual = memo.fault_base if memo.fault_base is not None else 0.0
    return fault_rate >= max(FAULT_BASE_FACTOR * usual, MAJOR_FAULTS_AFTER_SHRINK)


def shrunk_recently(memo: DomainMemo, now: float) -> bool:
    """A shrink was issued within SHRINK_BLAME seconds: faults now may be its doing."""
    return memo.shrunk_at is not None and now - memo.shrunk_at <= SHRINK_BLAME


def usual_fault_rate(memo: DomainMemo, fault_rate: float | None, now: float) -> float | None:
    """The guest's usual major-fault rate (an exponential average, FAULT_BASE_WEIGHT per
    reading), learned only when no recent shrink is to blame for the faults."""
    base = memo.fault_base
    if fault_rate is None or shrunk_recently(memo, now):
        return base
    return fault_rate if base is None else base + (fault_rate - base) * FAULT_BASE_WEIGHT
