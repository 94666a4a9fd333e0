"""Signs of memory shortage in a guest: stall (PSI), swap-in and major-fault rates.

Two questions are asked of them each tick (`Signals`):

- is the guest *short* of memory? A stall above the policy's `pressure_target`, heavy swap-in,
  or, without PSI, a storm of major faults (the only other sign of thrashing). A short guest's
  demand is corrected upward (`estimate.corrected`).
- has a shrink *touched* its working set? Weaker signs: a stall of a tenth of the pressure
  target, any sustained swap-in, or, soon after a shrink, major faults well above the guest's
  usual rate (busy guests read files all day). A touched guest is shrunk no further, and the
  page cache it still held is learned as demand (`estimate.learn_hidden`).

Rates come from the agent when it reports them, else from the balloon statistics' cumulative
counters of this tick and the previous one (kept in the memo).
"""

from __future__ import annotations

from typing import NamedTuple

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


class Signals(NamedTuple):
    pressure: float | None  # PSI some ratio, when a fresh report gives a plausible one
    swap_in_rate: float | None  # bytes/s
    major_fault_rate: float | None  # faults/s
    short: bool  # the guest is short of memory now
    touched: bool  # a shrink reached its working set


def signals(
    report: GuestReport | None,
    stats: MemoryStats | None,
    memo: DomainMemo,
    pressure_target: float,
    stats_at: float,
    now: float,
) -> Signals:
    """This tick's signs, from a fresh `report` (or None) and the balloon `stats` sampled at
    `stats_at` (their counters are compared with the memo's, whatever else they hold)."""
    pressure = pressure_of(report)
    swap_rate = swap_in_rate(report, stats, memo, stats_at)
    fault_rate = major_fault_rate(report, stats, memo, stats_at)
    short = is_short(pressure, swap_rate, fault_rate, pressure_target)
    touched = short or is_touched(pressure, swap_rate, fault_rate, pressure_target, memo, now)
    return Signals(
        pressure=pressure,
        swap_in_rate=swap_rate,
        major_fault_rate=fault_rate,
        short=short,
        touched=touched,
    )


def _ratio(value: float | None) -> float | None:
    return value if value is not None and 0.0 <= value <= 1.0 else None


def pressure_of(report: GuestReport | None) -> float | None:
    """The stall ratio over the last report interval, else the kernel's 10 s average."""
    if report is None:
        return None
    pressure = _ratio(report.psi_some)
    return pressure if pressure is not None else _ratio(report.psi_some_avg10)


def agent_rate(rate: float) -> float | None:
    return rate if 0.0 <= rate < MAX_RATE else None


def counter_rate(
    new: int | None, old: int | None, counted_at: float | None, now: float
) -> float | None:
    """Per second between two samples of a cumulative counter; None when either is missing,
    no time passed, or it went backwards (a guest reboot) or negative (garbage)."""
    if new is None or old is None or counted_at is None:
        return None
    elapsed = now - counted_at
    if elapsed <= 0.0 or new < old or new < 0:
        return None
    return (new - old) / elapsed


def swap_in_rate(
    report: GuestReport | None, stats: MemoryStats | None, memo: DomainMemo, stats_at: float
) -> float | None:
    """Bytes swapped in per second: the agent's own rate when it gives one (garbage: none),
    else from the balloon statistics' counter."""
    if report is not None and report.swap_in_rate is not None:
        return agent_rate(report.swap_in_rate)
    new = None if stats is None else stats.swap_in
    return counter_rate(new, memo.swap_in, memo.counters_at, stats_at)


def major_fault_rate(
    report: GuestReport | None, stats: MemoryStats | None, memo: DomainMemo, stats_at: float
) -> float | None:
    """Major faults per second, as `swap_in_rate` finds it."""
    if report is not None and report.major_fault_rate is not None:
        return agent_rate(report.major_fault_rate)
    new = None if stats is None else stats.major_faults
    return counter_rate(new, memo.major_faults, memo.counters_at, stats_at)


def is_short(
    pressure: float | None,
    swap_rate: float | None,
    fault_rate: float | None,
    pressure_target: float,
) -> bool:
    """Short of memory: a stall above the policy's target, heavy swap-in, or, without PSI, a
    storm of major faults."""
    return (
        (pressure is not None and pressure > pressure_target)
        or (swap_rate is not None and swap_rate >= SWAP_IN_SHORT)
        or (pressure is None and fault_rate is not None and fault_rate >= MAJOR_FAULTS_SHORT)
    )


def is_touched(
    pressure: float | None,
    swap_rate: float | None,
    fault_rate: float | None,
    pressure_target: float,
    memo: DomainMemo,
    now: float,
) -> bool:
    """A shrink reached the working set (weaker signs than `is_short`)."""
    return (
        (pressure is not None and pressure >= pressure_target * TOUCH_FRACTION)
        or (swap_rate is not None and swap_rate >= SWAP_IN_GUARD)
        or (fault_rate is not None and faults_after_shrink(fault_rate, memo, now))
    )


def shrunk_recently(memo: DomainMemo, now: float) -> bool:
    """A shrink was issued within SHRINK_BLAME seconds: faults now may be its doing."""
    return memo.shrunk_at is not None and now - memo.shrunk_at <= SHRINK_BLAME


def faults_after_shrink(fault_rate: float, memo: DomainMemo, now: float) -> bool:
    """Soon after a shrink, major faults beyond what the guest's ordinary file reads explain
    are blamed on the shrink."""
    if not shrunk_recently(memo, now):
        return False
    usual = memo.fault_base if memo.fault_base is not None else 0.0
    return fault_rate >= max(FAULT_BASE_FACTOR * usual, MAJOR_FAULTS_AFTER_SHRINK)


def usual_fault_rate(memo: DomainMemo, fault_rate: float | None, now: float) -> float | None:
    """The guest's usual major-fault rate (an exponential average, FAULT_BASE_WEIGHT per
    reading), learned only when no recent shrink is to blame for the faults."""
    base = memo.fault_base
    if fault_rate is None or shrunk_recently(memo, now):
        return base
    return fault_rate if base is None else base + (fault_rate - base) * FAULT_BASE_WEIGHT
