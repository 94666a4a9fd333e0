"""Demand estimation: how much memory a guest needs to run without stalling.

Sources, best first (`read_demand`):

1. a fresh guest-agent report: the agent's `demand` (used memory that is not reclaimable
   cache, shmem counted), else its MemTotal - MemAvailable (`report_demand`);
2. fresh balloon statistics: MemTotal - MemAvailable (libvirt `available` - `usable`).

Anything implausible (zero, negative, larger than maxmem, MemAvailable > MemTotal, older than
`stale_after`, dated in the future) is discarded (`fresh_report`, `stats_problem`); with no
usable source the domain has "no data" and the caller keeps it where it is.

A report is believed unless it claims more than the guest occupies (MemTotal - MemFree)
while nothing stalls (`is_lie`): a guest that does not stall holds all it needs, so such a
claim is a lie and the kernel's balloon statistics are used instead.

MemTotal - MemAvailable counts page cache as free to take. The cache a guest really needs
is learned from the stall its loss causes (`learn_hidden`: the cache it held when a shrink
reached its working set), kept, and forgotten slowly (half-life HIDDEN_HALF_LIFE).

A guest short of memory (the signs are in `balloond.core.signals`) reads less than it needs:
its reading is capped by its balloon. Two figures come out of it:

- its *need* (`demand`), what sharing by weight is fair about: the reading, raised by what
  the shortage shows (`balloond.core.need`: its swap, and the need pressed out of it tick by
  tick until the shortage stops);
- its *boosted* demand (`corrected`), what its want is built on: a generous step above its
  size that grows with the stall (`boost_for`), Committed_AS as a witness. When the host has
  room a stalled guest gets that at once; under contention only its need counts.

Unlike MoM (page cache counted as used) this does not keep every cache page; unlike
selfballoon (Committed_AS as the target) it does not pay for allocations never touched.
"""

from __future__ import annotations

from typing import NamedTuple

from balloond.core.need import Shortage, half_life_factor, in_swap, pressed_need
from balloond.core.overhead import observed_overhead, overhead_for
from balloond.core.signals import is_short, is_touched, pressure_of, rates
from balloond.core.state import DomainMemo
from balloond.model import DomainSnapshot, GuestReport, MemoryStats
from balloond.policy.model import Policy
from balloond.units import MiB

# Upward correction when short: boost = BOOST_PER_TARGET x (pressure / pressure_target),
# at least BOOST_MIN, at most BOOST_MAX of the current size.
BOOST_MIN = 0.10
BOOST_PER_TARGET = 0.05
BOOST_MAX = 1.0
# A report that claims more than the guest occupies, with no stall to back it, is not believed
# (a lying guest): beyond it by more than LIE_SLACK and by more than LIE_RATIO of it.
LIE_RATIO = 0.10
LIE_SLACK = 64 * MiB
LIE_NOTE = "guest report claims more than its balloon statistics show; using statistics"
# Learned hidden demand (hot cache the statistics count as available) halves in this time.
HIDDEN_HALF_LIFE = 1800.0


class Estimate(NamedTuple):
    """What the core believes about one guest this tick. `demand` None means no data."""

    demand: int | None  # the need (no buffer, no boost), bytes in the guest's terms
    raw: int | None  # the reading before correction
    source: str  # "report", "stats" or "" (none)
    pressure: float | None  # PSI some ratio, when a report gives it
    swap_in_rate: float | None  # bytes/s
    major_fault_rate: float | None  # faults/s
    short: bool  # pressure or swapping shows the guest is short of memory
    requested: int | None  # the guest's own requested target (not yet clamped)
    why_no_data: str = ""
    note: str = ""  # e.g. a disbelieved report
    hidden: int = 0  # learned demand the balloon statistics do not show (see learn_hidden)
    touched: bool = False  # a shrink reached the working set: shrink no further
    overhead: int = 0  # balloon the guest never sees, added to the target (`overhead_for`)
    overhead_learned: int | None = None  # what `overhead_for` learned, for the next memo
    overhead_seen: int | None = None  # ... and the largest plausible gap seen so far
    boosted: int | None = None  # demand with a short guest's boost: what its want is built on
    pressed: int | None = None  # the need found while short, for the next memo
    pressed_at: float | None = None


def fresh_report(report: GuestReport | None, now: float, stale_after: float) -> GuestReport | None:
    """The report, unless it is older than `stale_after` or dated in the future."""
    if report is None or not -stale_after <= now - report.received_at <= stale_after:
        return None
    return report


def stats_problem(stats: MemoryStats | None, maxmem: int, now: float, stale_after: float) -> str:
    """Why the balloon statistics are unusable, or "" when they are fine."""
    if stats is None or stats.total is None or stats.available is None:
        return "no balloon statistics"
    total, available, last = stats.total, stats.available, stats.last_update
    if last is not None and not -stale_after <= now - last <= stale_after:
        return f"balloon statistics are {now - last:.0f} s old"
    if not 0 < total <= maxmem:
        return f"implausible MemTotal {total} bytes (maxmem {maxmem})"
    if not 0 <= available < total:
        return f"implausible MemAvailable {available} bytes (MemTotal {total})"
    return ""


def _plausible(size: int | None, maxmem: int) -> bool:
    return size is not None and 0 < size <= maxmem


def report_demand(report: GuestReport, maxmem: int) -> int | None:
    """The agent's demand, else its MemTotal - MemAvailable, when plausible."""
    if _plausible(report.demand, maxmem):
        return report.demand
    total, avail = report.mem_total, report.mem_available
    if total is None or avail is None or not 0 <= avail < total <= maxmem:
        return None
    return total - avail


def requested_target(report: GuestReport | None, maxmem: int) -> int | None:
    """The balloon size the guest asks for, when plausible (the policy range clamps it)."""
    if report is None or not _plausible(report.requested_target, maxmem):
        return None
    return report.requested_target


def is_lie(claimed: int, stats: MemoryStats) -> bool:
    """A claim beyond what the guest occupies (MemTotal - MemFree: used memory plus every cache
    page), by more than LIE_SLACK and more than LIE_RATIO of it. Asked only of a guest that
    does not stall: it holds all it needs."""
    total = stats.total or 0
    unused = stats.unused
    if unused is None or not 0 <= unused <= total:
        unused = 0
    occupied = total - unused
    return claimed > occupied + LIE_SLACK and claimed > occupied + int(occupied * LIE_RATIO)


def read_demand(
    report: GuestReport | None, stats: MemoryStats | None, short: bool, maxmem: int
) -> tuple[int | None, str, str]:
    """(reading, source, note): the demand read from the best believable source, a fresh
    report's claim, else the usable balloon statistics (`stats` None: unusable); the source
    is "report", "stats" or "" (none), the note says why a report was not believed."""
    claimed = None if report is None else report_demand(report, maxmem)
    stats_demand = None
    lie = False
    if stats is not None and stats.total is not None and stats.available is not None:
        stats_demand = stats.total - stats.available
        lie = claimed is not None and not short and is_lie(claimed, stats)
    if claimed is not None and not lie:
        return claimed, "report", ""
    if stats_demand is None:
        return None, "", ""
    return stats_demand, "stats", LIE_NOTE if lie else ""


def visible_size(
    stats: MemoryStats | None, report: GuestReport | None, current: int, maxmem: int
) -> int:
    """What a reading capped by the balloon is capped at: the guest's MemTotal (usable
    statistics', else a fresh report's if plausible, else the balloon itself)."""
    if stats is not None and stats.total is not None:
        return stats.total
    if report is not None and _plausible(report.mem_total, maxmem):
        assert report.mem_total is not None
        return report.mem_total
    return current


def decayed_hidden(memo: DomainMemo, now: float) -> int:
    """Hidden demand learned earlier, decayed (half-life HIDDEN_HALF_LIFE)."""
    if memo.hidden is None or memo.hidden_at is None:
        return 0
    return int(memo.hidden * half_life_factor(now - memo.hidden_at, HIDDEN_HALF_LIFE))


def learn_hidden(hidden: int, stats: MemoryStats | None, report: GuestReport | None) -> int:
    """Demand that MemTotal - MemAvailable does not show (hot page cache), learned when a
    shrink touched the working set; `hidden` is what was learned before, decayed. Both the
    balloon statistics and the agent's `demand` count cache as free to take. A guest that
    stalls anyway needed (at least) the cache it still had: remember that cache
    (MemAvailable - MemFree: the cache in use, not free memory; a guest with MemFree to
    spare is not short) and add it to the reading from then on, decaying slowly so the guest
    is probed again now and then (Senpai probes continuously; this probes about once per
    HIDDEN_HALF_LIFE)."""
    if stats is not None and stats.available is not None:
        free = stats.unused if stats.unused is not None else 0
        return max(hidden, stats.available - min(max(free, 0), stats.available))
    if report is not None and report.mem_available is not None:
        return max(hidden, min(report.mem_available, report.mem_total or 0))
    return hidden


def estimate(
    dom: DomainSnapshot,
    policy: Policy,
    memo: DomainMemo,
    now: float,
    stale_after: float,
    stats_at: float,
) -> Estimate:
    """Estimate the demand of one running domain. Pure; never raises on guest data.
    `stats_at` is when the balloon statistics were sampled (their `last_update`, else now)."""
    maxmem, current = dom.maxmem, dom.current
    report = fresh_report(dom.report, now, stale_after)
    problem = stats_problem(dom.stats, maxmem, now, stale_after)
    stats = None if problem else dom.stats
    pressure = pressure_of(report)
    swap_rate, out_rate, fault_rate = rates(report, dom.stats, memo, stats_at)
    target = policy.pressure_target
    short = is_short(pressure, swap_rate, out_rate, fault_rate, target)
    touched = short or is_touched(pressure, swap_rate, out_rate, fault_rate, target, memo, now)
    hidden = decayed_hidden(memo, now)
    if touched:
        hidden = learn_hidden(hidden, stats, report)
    raw, source, note = read_demand(report, stats, short, maxmem)
    demand = boosted = pressed_at = None
    pressed = 0
    observed = 0  # this tick's plausible balloon - MemTotal
    why = ""
    if raw is None:
        why = "no fresh guest report and " + problem if problem else "no usable data"
    else:
        visible = visible_size(stats, report, current, maxmem)
        knows = raw > visible  # a reading above MemTotal already counts what the guest lacks
        if not knows:
            raw = min(raw + hidden, maxmem)
        if short or memo.pressed is not None:  # else nothing was or is pressed out of it
            shortage = Shortage(pressure, swap_rate, fault_rate) if short else None
            pressed, pressed_at = pressed_need(memo, raw, visible, shortage, target, now)
        demand = need(raw, visible, knows, pressed, short, report)
        demand = boosted = min(demand, maxmem)
        if short:
            boost = corrected(raw, visible, knows, pressure, target, report)
            boosted = min(max(boost, demand), maxmem)
        observed = observed_overhead(current, visible, maxmem)
    # Without data, what was learned of the overhead is kept for when data comes back, and
    # learned hidden demand is not (it has nothing to be added to).
    used, learned, seen = overhead_for(observed, memo, current, stats_at)
    return Estimate(
        demand=demand,
        raw=raw,
        source=source,
        note=note,
        requested=requested_target(report, maxmem),
        pressure=pressure,
        swap_in_rate=swap_rate,
        major_fault_rate=fault_rate,
        short=short,
        hidden=hidden if demand is not None else 0,
        touched=touched and demand is not None,
        why_no_data=why,
        overhead=used,
        overhead_learned=learned,
        overhead_seen=seen,
        boosted=boosted,
        pressed=min(pressed, maxmem) or None,
        pressed_at=pressed_at,
    )


def need(
    raw: int, visible: int, knows: bool, pressed: int, short: bool, report: GuestReport | None
) -> int:
    """The guest's need (guest terms): its reading, raised by what its shortage shows
    (`balloond.core.need`: what it has in swap while it thrashes, and the need pressed out of
    it). A reading above its MemTotal already counts what it lacks (an agent can): believed,
    but at most twice its size per tick, so that a lie costs little before it is caught."""
    if knows:
        return min(raw, 2 * visible)
    if short:
        return max(raw, in_swap(raw, visible, report), pressed)
    return max(raw, pressed)


def boost_for(pressure: float | None, target: float) -> float:
    """Fraction of the current size to add to a guest that is short of memory."""
    if pressure is None or target <= 0.0 or pressure <= target:
        return BOOST_MIN
    return min(BOOST_MAX, max(BOOST_MIN, BOOST_PER_TARGET * pressure / target))


def corrected(
    raw: int,
    visible: int,
    knows: bool,
    pressure: float | None,
    pressure_target: float,
    report: GuestReport | None,
) -> int:
    """The boosted demand of a guest that is short of memory (see the module docstring)."""
    if knows:
        # The guest knows it needs more than it has (an agent counts what it lacks): believe
        # it, but at most double per tick so that a lie costs little before it is caught.
        demand = min(raw, 2 * visible)
    else:
        # A stalled guest's reading is capped by its balloon: it needs more than it has.
        base = max(raw, visible)
        demand = base + int(base * boost_for(pressure, pressure_target))
    if report is None:
        return demand
    demand = max(demand, in_swap(raw, visible, report))
    committed = report.committed_as
    if committed is not None and 0 < committed <= 2 * visible:
        # Committed_AS is not capped by the balloon: while the guest stalls it is the best
        # witness of what it really needs (selfballoon's signal, used only as evidence).
        demand = max(demand, committed)
    return demand
