"""Stuck detection: does the balloon move toward the target we issued?

A progress mark records where the balloon was (and when) when it last made real progress.
Real progress is at least `PROGRESS_RATIO` of the remaining distance (and at least 1 MiB):
squeezed counted a single page per 5 s as progress, which let a nearly stuck domain hold a
promise for ever. A domain with no real progress for `stuck_after` seconds is stuck: it is left
alone until `stuck_until`, then retried; each consecutive strike doubles the wait (capped, see
`state.stuck_backoff`). Any real movement clears the strikes.
"""

from __future__ import annotations

from balloond.core.state import MEMO_ARITY, DomainMemo, stuck_backoff

MiB = 1024 * 1024
_new_tuple = tuple.__new__  # a DomainMemo of all MEMO_ARITY fields, without NamedTuple.__new__
if MEMO_ARITY != 20:
    raise RuntimeError(f"DomainMemo has {MEMO_ARITY} fields; update {__name__}")
PROGRESS_RATIO = 0.10


def reach_tolerance(target: int) -> int:
    """A balloon within this of its target has reached it (drivers stop a few pages short):
    no progress is expected of it any more."""
    tolerance = target // 100
    return tolerance if tolerance > MiB else MiB  # max() without the builtin call: hot


def _set(
    memo: DomainMemo,
    target: int | None,
    target_at: float | None,
    mark: int | None,
    mark_at: float | None,
    stuck_until: float | None,
    strikes: int,
    shrunk_at: float | None,
) -> DomainMemo:
    # Built directly, not with _replace (several times slower), from one unpacking of the old
    # memo (cheaper than reading its fields by name; `memo[:]` is an exact tuple, which
    # unpacks without the iterator a NamedTuple goes through).
    (
        swap_in,
        faults,
        counters_at,
        peak,
        peak_at,
        _,
        _,
        _,
        _,
        _,
        _,
        hidden,
        hidden_at,
        _,
        base,
        overhead,
        overhead_seen,
        seen,
        since,
        grown_at,
    ) = memo[:]
    return _new_tuple(
        DomainMemo,
        (
            swap_in,
            faults,
            counters_at,
            peak,
            peak_at,
            target,
            target_at,
            mark,
            mark_at,
            stuck_until,
            strikes,
            hidden,
            hidden_at,
            shrunk_at,
            base,
            overhead,
            overhead_seen,
            seen,
            since,
            grown_at,
        ),
    )


def track(memo: DomainMemo, current: int, now: float, stuck_after: float) -> DomainMemo:
    """Update the progress mark and stuck marks of one domain for this tick (`marks`)."""
    target = memo.target
    if target is None:
        return memo
    before = (memo.mark_current, memo.mark_at, memo.stuck_until, memo.strikes)
    after = marks(target, *before, current, now, stuck_after)
    if after == before:
        return memo
    return _set(memo, target, memo.target_at, *after, memo.shrunk_at)


# A domain's progress mark and stuck marks: (mark_current, mark_at, stuck_until, strikes).
Marks = tuple[int | None, float | None, float | None, int]


def marks(
    target: int,
    mark: int | None,
    mark_at: float | None,
    stuck_until: float | None,
    strikes: int,
    current: int,
    now: float,
    stuck_after: float,
) -> Marks:
    """The progress mark and stuck marks of one domain with a target issued earlier, updated
    for this tick. On the memo's fields rather than the memo: `classify` has them unpacked
    already and builds the next memo anyway (this runs for every domain on its way to a
    target: most of them at boot)."""
    gap = target - current  # abs() and reach_tolerance() spelled out: hot
    tolerance = target // 100
    if tolerance < MiB:
        tolerance = MiB
    if -tolerance <= gap <= tolerance:
        # Reached. The target stays recorded: it is still in force in the hypervisor, and
        # the last pages the balloon moves are still promised.
        if mark is None and stuck_until is None and not strikes:
            return mark, mark_at, stuck_until, strikes
        return None, None, None, 0
    if mark is None or mark_at is None:
        return current, now, stuck_until, strikes
    moved = (current - mark) if target > mark else (mark - current)
    # Real progress: max(MiB, PROGRESS_RATIO of abs(target - mark)) spelled out.
    needed = int((target - mark if target > mark else mark - target) * PROGRESS_RATIO)
    if moved >= (needed if needed > MiB else MiB):
        return current, now, None, 0
    # Stuck: wait for the retry, which re-issues a target and a fresh mark. Not stuck yet:
    # wait for `stuck_after` to pass without progress.
    if stuck_until is not None or now - mark_at < stuck_after:
        return mark, mark_at, stuck_until, strikes
    strikes = min(strikes + 1, 64)
    return current, now, now + stuck_backoff(strikes), strikes


def issued(
    memo: DomainMemo, current: int, target: int, now: float, grown: bool = False
) -> DomainMemo:
    """Record a target the daemon is about to apply. The mark restarts when the direction
    changes or the domain is being retried after a stuck period, so a retry gets a full
    `stuck_after` to show progress. A shrink is remembered (`shrunk_at`): faults that
    follow it are blamed on it; `grown` True: so is a grow for pressure or demand
    (`grown_at`, the grow cooldown). The memo is unpacked once and built once, as in `_set`:
    this runs for every domain that moves (most of them at boot)."""
    (
        swap_in,
        faults,
        counters_at,
        peak,
        peak_at,
        old,
        _,
        mark,
        mark_at,
        stuck_until,
        strikes,
        hidden,
        hidden_at,
        shrunk_at,
        base,
        overhead,
        overhead_seen,
        seen,
        since,
        grown_at,
    ) = memo[:]
    retried = stuck_until is not None and stuck_until <= now
    # A retry keeps its strikes (the next stuck period is longer) but is no longer stuck.
    if retried:
        stuck_until = None
    if target < current:
        shrunk_at = now
    if grown:
        grown_at = now
    gap = target - current  # abs() and reach_tolerance() spelled out: hot
    tolerance = target // 100
    if tolerance < MiB:
        tolerance = MiB
    if -tolerance <= gap <= tolerance:
        mark = mark_at = None
    elif (
        retried
        or mark is None
        or mark_at is None
        or old is None
        or (old > current) != (target > current)
    ):  # a new direction, a retry or no mark yet: the mark restarts here
        mark, mark_at = current, now
    return _new_tuple(
        DomainMemo,
        (
            swap_in,
            faults,
            counters_at,
            peak,
            peak_at,
            target,
            now,
            mark,
            mark_at,
            stuck_until,
            strikes,
            hidden,
            hidden_at,
            shrunk_at,
            base,
            overhead,
            overhead_seen,
            seen,
            since,
            grown_at,
        ),
    )
