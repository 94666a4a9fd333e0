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
    # memo (cheaper than reading its fields by name): this runs for every domain with a
    # pending target, every tick.
    (swap_in, faults, counters_at, peak, peak_at, _, _, _, _, _, _, hidden, hidden_at, _, base,
     overhead, overhead_seen, seen, since, grown_at) = memo  # fmt: skip
    return _new_tuple(DomainMemo, (
        swap_in, faults, counters_at, peak, peak_at, target, target_at, mark, mark_at,
        stuck_until, strikes, hidden, hidden_at, shrunk_at, base, overhead, overhead_seen, seen,
        since, grown_at,
    ))  # fmt: skip


def track(memo: DomainMemo, current: int, now: float, stuck_after: float) -> DomainMemo:
    """Update the progress mark and stuck marks of one domain for this tick."""
    target = memo.target
    if target is None:
        return memo
    if abs(target - current) <= reach_tolerance(target):
        # Reached. The target stays recorded: it is still in force in the hypervisor, and
        # the last pages the balloon moves are still promised.
        if memo.mark_current is None and memo.stuck_until is None and not memo.strikes:
            return memo
        return _set(memo, target, memo.target_at, None, None, None, 0, memo.shrunk_at)
    mark, mark_at = memo.mark_current, memo.mark_at
    if mark is None or mark_at is None:
        return _set(memo, target, memo.target_at, current, now, memo.stuck_until, memo.strikes,
                    memo.shrunk_at)  # fmt: skip
    moved = (current - mark) if target > mark else (mark - current)
    if moved >= max(MiB, int(abs(target - mark) * PROGRESS_RATIO)):
        return _set(memo, target, memo.target_at, current, now, None, 0, memo.shrunk_at)
    if memo.stuck_until is not None:
        return memo  # stuck: wait for the retry, which re-issues a target and a fresh mark
    if now - mark_at < stuck_after:
        return memo
    strikes = min(memo.strikes + 1, 64)
    return _set(memo, target, memo.target_at, current, now, now + stuck_backoff(strikes),
                strikes, memo.shrunk_at)  # fmt: skip


def issued(memo: DomainMemo, current: int, target: int, now: float) -> DomainMemo:
    """Record a target the daemon is about to apply. The mark restarts when the direction
    changes or the domain is being retried after a stuck period, so a retry gets a full
    `stuck_after` to show progress. A shrink is remembered (`shrunk_at`): faults that
    follow it are blamed on it."""
    retried = memo.stuck_until is not None and memo.stuck_until <= now
    # A retry keeps its strikes (the next stuck period is longer) but is no longer stuck.
    stuck_until = None if retried else memo.stuck_until
    shrunk_at = now if target < current else memo.shrunk_at
    if abs(target - current) <= reach_tolerance(target):
        return _set(memo, target, now, None, None, stuck_until, memo.strikes, shrunk_at)
    old = memo.target
    same_way = old is not None and (old > current) == (target > current)
    if same_way and not retried and memo.mark_current is not None and memo.mark_at is not None:
        return _set(memo, target, now, memo.mark_current, memo.mark_at, stuck_until,
                    memo.strikes, shrunk_at)  # fmt: skip
    return _set(memo, target, now, current, now, stuck_until, memo.strikes, shrunk_at)
