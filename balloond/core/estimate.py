"""Demand estimation: how much memory a guest needs to run without stalling.

Sources, best first:

1. a fresh guest-agent report: the agent's `demand` (used memory that is not reclaimable
   cache, shmem counted), else its MemTotal - MemAvailable; plus PSI `some` and swap rates;
2. fresh balloon statistics: MemTotal - MemAvailable (libvirt `available` - `usable`), and
   swap-in / major-fault rates from the cumulative counters of two ticks.

Anything implausible (zero, negative, larger than maxmem, MemAvailable > MemTotal, older than
`stale_after`, dated in the future) is discarded; with no usable source the domain has
"no data" and the caller keeps it where it is.

A report is believed unless it claims more than the guest occupies (MemTotal - MemFree)
while nothing stalls: a guest that does not stall holds all it needs, so such a claim is a
lie and the kernel's balloon statistics are used instead.

MemTotal - MemAvailable counts page cache as free to take. The cache a guest really needs
is learned from the stall its loss causes (`_hidden`: the cache it held when a shrink
reached its working set), kept, and forgotten slowly (half-life HIDDEN_HALF_LIFE).

Finally the reading is corrected upward when the guest is short of memory (PSI above the
policy's target, heavy swap-in, or, without PSI, a fault storm): a stalled guest's reading is
capped by its balloon, so the correction starts from its size and adds a boost that grows
with the overshoot, and takes the swapped-out memory and Committed_AS as witnesses of the
need. Unlike MoM (page cache counted as used) this does not keep every cache page; unlike
selfballoon (Committed_AS as the target) it does not pay for allocations never touched.
"""

from __future__ import annotations

from typing import NamedTuple

from balloond.core.progress import reach_tolerance
from balloond.core.state import DomainMemo
from balloond.model import DomainSnapshot, GuestReport, MemoryStats
from balloond.policy.model import Policy

PAGE = 4096
# A guest swapping in faster than this is short of memory (16 pages/s: more than noise).
SWAP_IN_SHORT = 16.0 * PAGE
# Any sustained swap-in (1 page/s) blocks shrinking when the policy's swap_guard is on.
SWAP_IN_GUARD = float(PAGE)
# (Floats, as the rates they are compared with every tick: the interpreter compares a float
# with an int on a slower path than two floats, with the same result.)
# Major faults also come from ordinary file reads; only a storm of them means "short".
MAJOR_FAULTS_SHORT = 200.0
# Signs that a shrink reached the working set (see `estimate`): a stall of a tenth of the
# pressure target, or this many major faults per second soon after a shrink.
TOUCH_FRACTION = 0.1
SHRINK_BLAME = 60.0
MAJOR_FAULTS_AFTER_SHRINK = 16.0
FAULT_BASE_FACTOR = 2.0  # ... and at least twice the guest's usual rate (see fault_base)
# Upward correction when short: boost = BOOST_PER_TARGET x (pressure / pressure_target),
# at least BOOST_MIN, at most BOOST_MAX of the current size.
BOOST_MIN = 0.10
BOOST_PER_TARGET = 0.05
BOOST_MAX = 1.0
# A report that claims more than the guest occupies, with no stall to back it, is not believed
# (a lying guest): claim > occupied + max(LIE_SLACK, occupied x LIE_RATIO).
LIE_RATIO = 0.10
LIE_SLACK = 64 * 1024 * 1024
# Balloon taken as invisible to the guest (see `estimate`): at most this share of it, and at
# most OVERHEAD_BASE + maxmem x OVERHEAD_PER_MAXMEM (kernel and firmware reservations, plus
# struct pages: 64 bytes per 4 KiB page of maxmem, doubled for margin).
MAX_OVERHEAD = 0.25
OVERHEAD_BASE = 64 * 1024 * 1024
OVERHEAD_PER_MAXMEM = 1 / 32
# Learned hidden demand (hot cache the statistics count as available) halves in this time.
HIDDEN_HALF_LIFE = 1800.0


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
    hidden: int = 0  # learned demand the balloon statistics do not show (see _hidden)
    touched: bool = False  # a shrink reached the working set: shrink no further
    overhead: int = 0  # balloon the guest never sees, added to the target (`overhead_for`)
    overhead_learned: int | None = None  # what `overhead_for` learned, for the next memo
    overhead_seen: int | None = None  # ... and the largest plausible gap seen so far


# Hot tuples are built with tuple.__new__ (no Python-level NamedTuple.__new__ frame), with
# every field given: these checks catch a field added later.
_new_tuple = tuple.__new__
if Estimate._fields[-1] != "overhead_seen" or len(Estimate._fields) != 15:
    raise RuntimeError("Estimate changed: update estimate()")


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
    if stats is None:
        return "no balloon statistics"
    total, available, last = stats.total, stats.available, stats.last_update  # read once: hot
    if total is None or available is None:
        return "no balloon statistics"
    if last is not None and not -stale_after <= now - last <= stale_after:
        return f"balloon statistics are {now - last:.0f} s old"
    if not 0 < total <= maxmem:
        return f"implausible MemTotal {total} bytes (maxmem {maxmem})"
    if not 0 <= available < total:
        return f"implausible MemAvailable {available} bytes (MemTotal {total})"
    return ""


# An Estimate's fields as a plain tuple, as `reading` returns them.
Reading = tuple[
    int | None,
    int | None,
    str,
    float | None,
    float | None,
    float | None,
    bool,
    int | None,
    str,
    str,
    int,
    bool,
    int,
    int | None,
    int | None,
]


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
    (
        swap_in,
        faults,
        counters_at,
        _,
        _,
        target,
        _,
        _,
        _,
        _,
        _,
        hidden,
        hidden_at,
        shrunk_at,
        fault_base,
        learned,
        seen,
        seen_current,
        since,
        _,
    ) = memo
    return _new_tuple(
        Estimate,
        reading(
            dom,
            policy.pressure_target,
            now,
            stale_after,
            stats_at,
            swap_in,
            faults,
            counters_at,
            target,
            hidden,
            hidden_at,
            shrunk_at,
            fault_base,
            learned,
            seen,
            seen_current,
            since,
        ),
    )


def reading(
    dom: DomainSnapshot,
    pressure_target: float,
    now: float,
    stale_after: float,
    stats_at: float,
    # The DomainMemo's fields it reads, by their names there (overhead, overhead_seen as
    # learned, seen):
    swap_in: int | None,
    faults: int | None,
    counters_at: float | None,
    target: int | None,
    hidden: int | None,
    hidden_at: float | None,
    shrunk_at: float | None,
    fault_base: float | None,
    learned: int | None,
    seen: int | None,
    seen_current: int | None,
    since: float | None,
) -> Reading:
    """`estimate()`'s fields as a plain tuple, for the core's first pass: it unpacks them at
    once (an exact tuple unpacks without an iterator) and builds the Estimate only when an
    explanation asks for it. It takes the memo's fields one by one because its caller has
    them unpacked already: unpacking a NamedTuple goes through an iterator, a few times the
    cost of passing the values.

    One function with its checks written out, not a call per check: it runs for every domain
    every tick, and a Python call costs as much as the check it makes. For the same reason
    min() and max() of two values are spelled out where every domain passes: the builtins
    parse keyword arguments on each call and cost several times the comparison. The
    statistics are checked inline, `stats_problem` naming the problem only when there is one.
    """
    maxmem = dom.maxmem
    report = dom.report
    if report is not None and not -stale_after <= now - report.received_at <= stale_after:
        report = None  # stale, or dated in the future
    stats = dom.stats
    usable = stats_total = available = None
    stats_why = ""
    if stats is not None:
        stats_total, available, last = stats.total, stats.available, stats.last_update
        if (
            stats_total is not None
            and available is not None
            and (last is None or -stale_after <= now - last <= stale_after)
            and 0 < stats_total <= maxmem
            and 0 <= available < stats_total
        ):  # stats_problem() finds none
            usable = stats
        else:
            stats_total = None
    if usable is None:
        stats_why = stats_problem(stats, maxmem, now, stale_after)
    swap_rate = fault_rate = pressure = requested = claimed = None
    counted = 2  # rates left for the counters (below)
    if report is not None:
        pressure = report.psi_some
        if pressure is None or not 0.0 <= pressure <= 1.0:
            pressure = report.psi_some_avg10
            if pressure is not None and not 0.0 <= pressure <= 1.0:
                pressure = None
        # The agent's own rates, when it gives them, win over the counters (garbage: none).
        rate = report.swap_in_rate
        if rate is not None:
            swap_rate = rate if 0.0 <= rate < 1e15 else None
            counted -= 1
        rate = report.major_fault_rate
        if rate is not None:
            fault_rate = rate if 0.0 <= rate < 1e15 else None
            counted -= 1
        requested = report.requested_target
        if requested is not None and not 0 < requested <= maxmem:
            requested = None
        claimed = report.demand
        if claimed is None or not 0 < claimed <= maxmem:
            claimed = report_demand(report, maxmem)
    # Swap-in bytes/s and major faults/s from the previous tick's cumulative counters, for
    # the rates the agent did not give (most agents give both: no need to compute them). A
    # counter that went backwards (guest reboot) or garbage gives no rate this tick.
    if counted and stats is not None and counters_at is not None:
        dt = stats_at - counters_at
        if not dt <= 0.0:
            if report is None or report.swap_in_rate is None:
                new, old = stats.swap_in, swap_in
                if new is not None and old is not None and not (new < old or new < 0):
                    swap_rate = (new - old) / dt
            if report is None or report.major_fault_rate is None:
                new, old = stats.major_faults, faults
                if new is not None and old is not None and not (new < old or new < 0):
                    fault_rate = (new - old) / dt
    # Short of memory: a stall above the policy's target, heavy swap-in, or, without PSI, a
    # storm of major faults (the only other sign of thrashing).
    short = (
        (pressure is not None and pressure > pressure_target)
        or (swap_rate is not None and swap_rate >= SWAP_IN_SHORT)
        or (pressure is None and fault_rate is not None and fault_rate >= MAJOR_FAULTS_SHORT)
    )
    # Has a shrink reached the working set? Weaker signs than `short`: a stall of a tenth of
    # the pressure target, any swap-in, or, within SHRINK_BLAME seconds of a shrink, major
    # faults beyond what the guest's ordinary file reads explain (busy guests read files all
    # day: only faults well above their usual rate are blamed).
    touched = (
        short
        or (pressure is not None and pressure >= pressure_target * TOUCH_FRACTION)
        or (swap_rate is not None and swap_rate >= SWAP_IN_GUARD)
        or (
            fault_rate is not None
            and shrunk_at is not None  # shrunk within SHRINK_BLAME seconds
            and now - shrunk_at <= SHRINK_BLAME
            and fault_rate
            >= (  # max() spelled out
                blame
                if (blame := FAULT_BASE_FACTOR * (fault_base if fault_base is not None else 0.0))
                > MAJOR_FAULTS_AFTER_SHRINK
                else MAJOR_FAULTS_AFTER_SHRINK
            )
        )
    )
    # Learned hidden demand, decayed (see _hidden, which learns more of it when touched).
    if hidden is not None and hidden_at is not None:
        age = now - hidden_at
        hidden = int(hidden * 0.5 ** ((age if age > 0.0 else 0.0) / HIDDEN_HALF_LIFE))
    else:
        hidden = 0
    if touched:
        hidden = _hidden(hidden, usable, report)
    stats_demand = None
    lie = False
    if usable is not None:
        assert stats_total is not None and available is not None
        stats_demand = stats_total - available
        if claimed is not None and not short:
            # A guest that does not stall holds all it needs, so it cannot need more than it
            # occupies (MemTotal - MemFree: used memory plus every cache page). A claim
            # beyond that is a lie (or a bug): the kernel's balloon statistics are used.
            unused = usable.unused
            if unused is None or not 0 <= unused <= stats_total:
                unused = 0
            occupied = stats_total - unused
            # Within LIE_SLACK it is no lie whatever the ratio gives: skip its float product.
            if claimed > occupied + LIE_SLACK:
                slack = int(occupied * LIE_RATIO)
                lie = claimed > occupied + (slack if slack > LIE_SLACK else LIE_SLACK)
    raw, source, note = claimed, "report", ""
    if claimed is None or lie:
        if lie:
            note = "guest report claims more than its balloon statistics show; using statistics"
        raw, source = stats_demand, "stats"
    if raw is None:
        why = "no fresh guest report and " + stats_why if stats_why else "no usable data"
        # What was learned of the overhead is kept for when data comes back.
        used, learned, seen = overhead_for(
            0, learned, seen, seen_current, dom.current, since, target, stats_at
        )
        return (
            None,
            None,
            "",
            pressure,
            swap_rate,
            fault_rate,
            short,
            requested,
            why,
            "",
            0,
            False,
            used,
            learned,
            seen,
        )
    # What a reading capped by the balloon is capped at: the guest's MemTotal.
    if stats_total is not None:
        visible = stats_total
    elif report is not None and report.mem_total is not None and 0 < report.mem_total <= maxmem:
        visible = report.mem_total
    else:
        visible = dom.current
    knows = raw > visible  # a reading above MemTotal already counts what the guest lacks
    if not knows:
        raw += hidden
        if maxmem < raw:
            raw = maxmem
    demand = _corrected(raw, visible, knows, pressure, pressure_target, report) if short else raw
    if demand > maxmem:
        demand = maxmem
    # Balloon the guest never sees: its MemTotal is smaller than the balloon by the kernel
    # image, struct pages and firmware reservations (measured in the lab: ~50 MiB, so a
    # 256 MiB balloon gives a 206 MiB MemTotal). Demand is in the guest's terms, targets are
    # balloon sizes: without this a demand-sized target leaves the guest nothing to spare.
    # A larger gap is not overhead but a reading from before the balloon grew (statistics lag
    # the balloon by up to a stats period): counting it would grow the guest again on its own
    # growth, so it is ignored beyond MAX_OVERHEAD of the balloon and capped at what a kernel
    # plausibly reserves. `overhead_for` then keeps it steady while the balloon moves.
    current = dom.current
    overhead = current - visible
    if not 0 < overhead <= current * MAX_OVERHEAD:
        overhead = 0
    else:
        if overhead > OVERHEAD_BASE and overhead > (
            cap := OVERHEAD_BASE + int(maxmem * OVERHEAD_PER_MAXMEM)  # >= OVERHEAD_BASE
        ):  # (maxmem > 0 here: raw is a plausible reading)
            overhead = cap
    used, learned, seen = overhead_for(
        overhead, learned, seen, seen_current, current, since, target, stats_at
    )
    return (
        demand,
        raw,
        source,
        pressure,
        swap_rate,
        fault_rate,
        short,
        requested,
        "",
        note,
        hidden,
        touched,
        used,
        learned,
        seen,
    )


def _hidden(
    hidden: int,
    stats: MemoryStats | None,
    report: GuestReport | None,
) -> int:
    """Demand that MemTotal - MemAvailable does not show (hot page cache), learned from
    stalls, for a guest whose working set was touched; `hidden` is what was learned before,
    decayed. Both the balloon statistics and the agent's `demand` count cache as free to
    take. A guest that stalls anyway needed (at least) the cache it still had: remember
    that cache (MemAvailable - MemFree) and add it to the reading from then on, decaying
    slowly so the guest is probed again now and then (Senpai probes continuously; this
    probes about once per HIDDEN_HALF_LIFE)."""
    # The cache in use, not free memory: a guest with MemFree to spare is not short.
    if stats is not None and stats.available is not None:
        free = stats.unused if stats.unused is not None else 0
        hidden = max(hidden, stats.available - min(max(free, 0), stats.available))
    elif report is not None and report.mem_available is not None:
        hidden = max(hidden, min(report.mem_available, report.mem_total or 0))
    return hidden


def overhead_for(
    observed: int,
    learned: int | None,
    seen: int | None,
    seen_current: int | None,
    current: int,
    since: float | None,
    target: int | None,
    stats_at: float,
) -> tuple[int, int | None, int | None]:
    """(used, learned, seen): the overhead added to the target this tick, the one learned
    from a settled sample (this tick's or an earlier one), the largest plausible gap seen so
    far. A plain tuple: `reading` unpacks it for every domain every tick.

    `observed` is this tick's plausible balloon - MemTotal (0: none); `learned`, `seen`,
    `seen_current`, `since` and `target` are the memo's overhead, overhead_seen,
    seen_current, current_since and target (passed one by one: `reading` has them unpacked).

    Balloon - MemTotal is a per-guest constant (kernel image, struct pages, firmware) that
    only looks different while the balloon moves: learn it from settled samples and use the
    learned value meanwhile. Before one is learned, use the largest plausible gap seen (a
    larger target is the safe error; `estimate` already caps what counts as plausible).

    Settled: the balloon is at rest (seen at this size last tick, its target in force
    reached), and the statistics were sampled after it came to rest. Only then is current -
    MemTotal the guest's reservation: while the balloon moves, `current` and MemTotal are
    sampled at different moments (the lab saw 20-45 MiB instead of 54 while a guest grew, and
    the lower target cancelled the grow in flight)."""
    # A gap equal to the one learned already has nothing to teach: the settled test is
    # skipped for it (most domains, most ticks).
    if (
        observed != learned
        and observed > 0
        and seen_current == current
        and since is not None
        and not stats_at <= since
        and (target is None or abs(target - current) <= reach_tolerance(target))
    ):
        learned = observed
    before = seen or 0
    seen = (observed if observed > before else before) or None
    return (learned if learned is not None else seen or 0), learned, seen


def boost_for(pressure: float | None, target: float) -> float:
    """Fraction of the current size to add to a guest that is short of memory."""
    if pressure is None or target <= 0.0 or pressure <= target:
        return BOOST_MIN
    return min(BOOST_MAX, max(BOOST_MIN, BOOST_PER_TARGET * pressure / target))


def _corrected(
    raw: int,
    visible: int,
    knows: bool,
    pressure: float | None,
    pressure_target: float,
    report: GuestReport | None,
) -> int:
    """The demand of a guest that is short of memory (see the module docstring)."""
    maxmem = max(raw, visible)  # only for the swap sanity bound below
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
    if report.swap_total is not None and report.swap_free is not None:
        swapped = report.swap_total - report.swap_free
        if 0 < swapped <= 4 * maxmem:
            demand = max(demand, min(raw, visible) + swapped)
    committed = report.committed_as
    if committed is not None and 0 < committed <= 2 * visible:
        # Committed_AS is not capped by the balloon: while the guest stalls it is the best
        # witness of what it really needs (selfballoon's signal, used only as evidence).
        demand = max(demand, committed)
    return demand
