"""Stuck detection: does the balloon move toward the target we issued?

A progress mark records where the balloon was (and when) when it last made real progress.
Real progress is at least `PROGRESS_RATIO` of the remaining distance (and at least 1 MiB):
squeezed counted a single page per 5 s as progress, which let a nearly stuck domain hold a
promise for ever. A domain with no real progress for `stuck_after` seconds is stuck: it is left
alone until `stuck_until`, then retried; each consecutive strike doubles the wait (capped, see
`state.stuck_backoff`). Any real movement clears the strikes.
"""

from __future__ import annotations

from balloond.core.state import DomainMemo, stuck_backoff

MiB = 1024 * 1024
PROGRESS_RATIO = 0.10


def reach_tolerance(target: int) -> int:
    """A balloon within this of its target has reached it (drivers stop a few pages short)."""
    return max(MiB, target // 100)


def track(memo: DomainMemo, current: int, now: float, stuck_after: float) -> DomainMemo:
    """Update the progress mark and stuck marks of one domain for this tick."""
    target = memo.target
    if target is None:
        return memo
    if abs(target - current) <= reach_tolerance(target):
        return memo._replace(
            target=None, target_at=None, mark_current=None, mark_at=None,
            stuck_until=None, strikes=0,
        )  # fmt: skip
    mark, mark_at = memo.mark_current, memo.mark_at
    if mark is None or mark_at is None:
        return memo._replace(mark_current=current, mark_at=now)
    moved = (current - mark) if target > mark else (mark - current)
    if moved >= max(MiB, int(abs(target - mark) * PROGRESS_RATIO)):
        return memo._replace(mark_current=current, mark_at=now, stuck_until=None, strikes=0)
    if memo.stuck_until is not None:
        return memo  # stuck: wait for the retry, which re-issues a target and a fresh mark
    if now - mark_at < stuck_after:
        return memo
    strikes = min(memo.strikes + 1, 64)
    return memo._replace(
        strikes=strikes, stuck_until=now + stuck_backoff(strikes),
        mark_current=current, mark_at=now,
    )  # fmt: skip


def issued(memo: DomainMemo, current: int, target: int, now: float) -> DomainMemo:
    """Record a target the daemon is about to apply. The mark restarts when the direction
    changes or the domain is being retried after a stuck period, so a retry gets a full
    `stuck_after` to show progress."""
    retried = memo.stuck_until is not None and memo.stuck_until <= now
    if abs(target - current) <= reach_tolerance(target):
        return memo._replace(
            target=None, target_at=None, mark_current=None, mark_at=None,
            stuck_until=None if retried else memo.stuck_until,
        )  # fmt: skip
    old = memo.target
    same_way = old is not None and (old > current) == (target > current)
    if same_way and not retried and memo.mark_current is not None and memo.mark_at is not None:
        return memo._replace(target=target, target_at=now)
    # A retry keeps its strikes (the next stuck period is longer) but is no longer stuck.
    stuck_until = None if retried else memo.stuck_until
    return memo._replace(
        target=target, target_at=now, mark_current=current, mark_at=now,
        stuck_until=stuck_until,
    )  # fmt: skip
