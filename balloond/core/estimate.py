"""Demand estimation: how much memory a guest needs to run without stalling.

Sources, best first:

1. a fresh guest-agent report: the agent's `demand` (used memory that is not reclaimable
   cache, shmem counted), else its MemTotal - MemAvailable; plus PSI `some` and swap rates;
2. fresh balloon statistics: MemTotal - MemAvailable (libvirt `available` - `usable`), and
   swap-in / major-fault rates from the cumulative counters of two ticks.

Anything implausible (zero, negative, larger than maxmem, MemAvailable > MemTotal, older than
`stale_after`, dated in the future) is discarded; with no usable source the domain has
"no data" and the caller keeps it where it is.

The raw reading is then corrected upward when the guest shows it is short of memory (PSI
above the policy's target, or swapping in): a stalled guest's reading is capped by its balloon,
so the correction starts from the current size and adds a boost that grows with the overshoot
and, when known, the swapped-out working set. Unlike MoM (page cache counted as used) this
does not keep every cache page; unlike Committed_AS (selfballoon) it does not pay for
allocations never touched.
"""

from __future__ import annotations

from typing import NamedTuple

from balloond.core.state import DomainMemo
from balloond.model import DomainSnapshot, GuestReport, MemoryStats
from balloond.policy.model import Policy

PAGE = 4096
# A guest swapping in faster than this is short of memory (16 pages/s: more than noise).
SWAP_IN_SHORT = 16 * PAGE
# Any sustained swap-in (1 page/s) blocks shrinking when the policy's swap_guard is on.
SWAP_IN_GUARD = PAGE
# Major faults also come from ordinary file reads; only a storm of them means "short".
MAJOR_FAULTS_SHORT = 200.0
# Upward correction when short: boost = BOOST_PER_TARGET x (pressure / pressure_target),
# at least BOOST_MIN, at most BOOST_MAX of the current size.
BOOST_MIN = 0.10
BOOST_PER_TARGET = 0.05
BOOST_MAX = 1.0
# A report that claims far more than the balloon statistics show, with no stall to back it,
# is not believed (a lying guest): claim > stats x LIE_RATIO + LIE_SLACK.
LIE_RATIO = 1.25
LIE_SLACK = 64 * 1024 * 1024


class Estimate(NamedTuple):
    """What the core believes about one guest this tick. `demand` None means no data."""

    demand: int | None  # corrected demand (no buffer), bytes
    raw: int | None  # the reading before correction
    source: str  # "report", "stats" or "" (none)
    pressure: float | None  # PSI some ratio, when a report gives it
    swap_in_rate: float | None  # bytes/s
    major_fault_rate: float | None  # faults/s
    short: bool  # pressure or swapping shows the guest is short of memory
    requested: int | None  # the guest's own requested target (not yet clamped)
    why_no_data: str = ""
    note: str = ""  # e.g. a disbelieved report


def fresh_report(report: GuestReport | None, now: float, stale_after: float) -> bool:
    if report is None:
        return False
    age = now - report.received_at
    return -stale_after <= age <= stale_after


def _plausible(size: int | None, maxmem: int) -> bool:
    return size is not None and 0 < size <= maxmem


def report_demand(report: GuestReport, maxmem: int) -> int | None:
    if _plausible(report.demand, maxmem):
        return report.demand
    total, avail = report.mem_total, report.mem_available
    if total is None or avail is None or not 0 <= avail < total <= maxmem:
        return None
    return total - avail


def stats_problem(stats: MemoryStats | None, maxmem: int, now: float, stale_after: float) -> str:
    """Why the balloon statistics are unusable, or "" when they are fine."""
    if stats is None or stats.total is None or stats.available is None:
        return "no balloon statistics"
    if stats.last_update is not None and not abs(now - stats.last_update) <= stale_after:
        return f"balloon statistics are {now - stats.last_update:.0f} s old"
    if not 0 < stats.total <= maxmem:
        return f"implausible MemTotal {stats.total} bytes (maxmem {maxmem})"
    if not 0 <= stats.available < stats.total:
        return f"implausible MemAvailable {stats.available} bytes (MemTotal {stats.total})"
    return ""


def _rate(new: int | None, old: int | None, dt: float) -> float | None:
    # A counter that went backwards (guest reboot) or garbage gives no rate this tick.
    if new is None or old is None or dt <= 0.0 or new < old or new < 0:
        return None
    return (new - old) / dt


def counter_rates(
    stats: MemoryStats | None, memo: DomainMemo, sampled_at: float
) -> tuple[float | None, float | None]:
    """Swap-in bytes/s and major faults/s from the previous tick's counters."""
    if stats is None or memo.counters_at is None:
        return None, None
    dt = sampled_at - memo.counters_at
    return _rate(stats.swap_in, memo.swap_in, dt), _rate(stats.major_faults, memo.major_faults, dt)


def _report_pressure(report: GuestReport) -> float | None:
    for value in (report.psi_some, report.psi_some_avg10):
        if value is not None and 0.0 <= value <= 1.0:
            return value
    return None


def _nonneg(value: float | None) -> float | None:
    return value if value is not None and 0.0 <= value < 1e15 else None


def estimate(
    dom: DomainSnapshot,
    policy: Policy,
    memo: DomainMemo,
    *,
    now: float,
    stale_after: float,
    stats_at: float,
) -> Estimate:
    """Estimate the demand of one running domain. Pure; never raises on guest data."""
    maxmem = dom.maxmem
    report = dom.report if fresh_report(dom.report, now, stale_after) else None
    stats_why = stats_problem(dom.stats, maxmem, now, stale_after)
    stats_demand = None
    if not stats_why and dom.stats is not None:
        assert dom.stats.total is not None and dom.stats.available is not None
        stats_demand = dom.stats.total - dom.stats.available
    swap_rate, fault_rate = counter_rates(dom.stats, memo, stats_at)
    pressure = None
    requested = None
    raw, source, note = stats_demand, "stats" if stats_demand is not None else "", ""
    if report is not None:
        pressure = _report_pressure(report)
        swap_rate = _nonneg(report.swap_in_rate) if report.swap_in_rate is not None else swap_rate
        if report.major_fault_rate is not None:
            fault_rate = _nonneg(report.major_fault_rate)
        if _plausible(report.requested_target, maxmem):
            requested = report.requested_target
        claimed = report_demand(report, maxmem)
        if claimed is not None:
            raw, source = claimed, "report"
    short = _is_short(pressure, swap_rate, fault_rate, policy.pressure_target)
    if _disbelieved(raw if source == "report" else None, stats_demand, short):
        note = "guest report claims more than its balloon statistics show; using statistics"
        raw, source = stats_demand, "stats"
    if raw is None:
        why = "no fresh guest report and " + stats_why if stats_why else "no usable data"
        return Estimate(None, None, "", pressure, swap_rate, fault_rate, short, requested, why)
    demand = _corrected(raw, dom.current, maxmem, short, pressure, policy, report)
    return Estimate(
        demand, raw, source, pressure, swap_rate, fault_rate, short, requested, "", note
    )


def _disbelieved(claimed: int | None, stats_demand: int | None, short: bool) -> bool:
    # A claim the kernel's own balloon statistics contradict, with no stall to back it.
    if claimed is None or stats_demand is None or short:
        return False
    return claimed > stats_demand * LIE_RATIO + LIE_SLACK


def _is_short(
    pressure: float | None, swap_rate: float | None, fault_rate: float | None, target: float
) -> bool:
    if pressure is not None and pressure > target:
        return True
    if swap_rate is not None and swap_rate >= SWAP_IN_SHORT:
        return True
    # Without PSI, a storm of major faults is the only other sign of thrashing.
    return pressure is None and fault_rate is not None and fault_rate >= MAJOR_FAULTS_SHORT


def boost_for(pressure: float | None, target: float) -> float:
    """Fraction of the current size to add to a guest that is short of memory."""
    if pressure is None or target <= 0.0 or pressure <= target:
        return BOOST_MIN
    return min(BOOST_MAX, max(BOOST_MIN, BOOST_PER_TARGET * pressure / target))


def _corrected(
    raw: int,
    current: int,
    maxmem: int,
    short: bool,
    pressure: float | None,
    policy: Policy,
    report: GuestReport | None,
) -> int:
    if not short:
        return raw
    # A stalled guest's reading is capped by its balloon: it needs more than it has.
    base = max(raw, current)
    demand = base + int(base * boost_for(pressure, policy.pressure_target))
    if report is not None and report.swap_total is not None and report.swap_free is not None:
        swapped = report.swap_total - report.swap_free
        if 0 < swapped <= maxmem:
            demand = max(demand, raw + swapped)
    return min(demand, maxmem)
