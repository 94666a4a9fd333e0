"""Stuck detection: does the balloon move toward the target we issued?

A progress mark records where the balloon was (and when) when it last made real progress.
Real progress is at least `PROGRESS_RATIO` of the remaining distance (and at least 1 MiB):
squeezed counted a single page per 5 s as progress, which let a nearly stuck domain hold a
promise for ever. A domain with no real progress for `stuck_after` seconds is stuck: it is left
alone until `stuck_until`, then retried; each consecutive strike doubles the wait (capped, see
`state.stuck_backoff`). Any real movement clears the strikes.

A balloon within the reach tolerance of its target has reached it (`reached`); this one
definition serves stuck detection, the steady/moving wording of a decision and the settled
test of the overhead.
"""

from __future__ import annotations

from typing import NamedTuple

from balloond.core.state import STUCK_BACKOFF_CAP, DomainMemo, stuck_backoff
from balloond.units import MiB

PROGRESS_RATIO = 0.10
# Drivers stop a few pages short of a target: within 1 % of it (at least 1 MiB) is reached.
REACH_PERCENT = 1
MAX_STRIKES = 64


def reached(target: int, current: int) -> bool:
    """The balloon is at its target, give or take what drivers leave (the reach tolerance):
    within 1 MiB of it, or within REACH_PERCENT of it. No progress is expected of it any more."""
    gap = abs(target - current)
    return gap <= MiB or gap <= target * REACH_PERCENT // 100


class Marks(NamedTuple):
    """A domain's progress mark and stuck marks, as its memo keeps them."""

    mark_current: int | None
    mark_at: float | None
    stuck_until: float | None
    strikes: int


def marks_of(memo: DomainMemo) -> Marks:
    return Marks(
        mark_current=memo.mark_current,
        mark_at=memo.mark_at,
        stuck_until=memo.stuck_until,
        strikes=memo.strikes,
    )


def with_marks(memo: DomainMemo, marks: Marks) -> DomainMemo:
    return memo._replace(
        mark_current=marks.mark_current,
        mark_at=marks.mark_at,
        stuck_until=marks.stuck_until,
        strikes=marks.strikes,
    )


def follow(target: int, marks: Marks, current: int, now: float, stuck_after: float) -> Marks:
    """The marks of a domain with a target issued earlier, after this tick's look at it."""
    if reached(target, current):
        # The target stays recorded: it is still in force in the hypervisor, and the last
        # pages the balloon moves are still promised. The marks clear.
        cleared = Marks(mark_current=None, mark_at=None, stuck_until=None, strikes=0)
        unmarked = marks.mark_current is None and marks.stuck_until is None
        return marks if unmarked and not marks.strikes else cleared
    mark, mark_at = marks.mark_current, marks.mark_at
    if mark is None or mark_at is None:
        return marks._replace(mark_current=current, mark_at=now)
    moved = current - mark if target > mark else mark - current
    if moved >= max(MiB, int(abs(target - mark) * PROGRESS_RATIO)):
        return Marks(mark_current=current, mark_at=now, stuck_until=None, strikes=0)
    if marks.stuck_until is not None or now - mark_at < stuck_after:
        # Stuck already (waiting for the retry, which re-issues a target and a fresh mark),
        # or not for long enough yet.
        return marks
    strikes = min(marks.strikes + 1, MAX_STRIKES)
    return Marks(
        mark_current=current,
        mark_at=now,
        stuck_until=now + stuck_backoff(strikes),
        strikes=strikes,
    )


def never_permanent(memo: DomainMemo, now: float) -> DomainMemo:
    """A stuck mark further away than the longest backoff (a clock set back, an edited state
    file) is brought back to it: a domain is never given up on."""
    latest = now + STUCK_BACKOFF_CAP
    if memo.stuck_until is not None and memo.stuck_until > latest:
        return memo._replace(stuck_until=latest)
    return memo


def track(memo: DomainMemo, current: int, now: float, stuck_after: float) -> DomainMemo:
    """The memo with this tick's progress of the target issued earlier followed (`follow`).
    A domain sitting exactly on its target with nothing marked has nothing to follow."""
    target = memo.target
    if target is None or (target == current and memo.mark_at is None and not memo.strikes):
        return memo
    before = marks_of(memo)
    after = follow(target, before, current, now, stuck_after)
    return memo if after == before else with_marks(memo, after)


def gone(memo: DomainMemo, current: int, now: float, stuck_after: float) -> DomainMemo:
    """The memo of a domain with a target that is no longer alive (shut off, crashed): its
    progress followed one last time, then everything but its stuck marks forgotten, so that
    a restart neither keeps an old target nor resets its backoff."""
    if memo.target is None:
        return memo
    marks = follow(memo.target, marks_of(memo), current, now, stuck_after)
    return DomainMemo(stuck_until=marks.stuck_until, strikes=marks.strikes)


def issued(
    memo: DomainMemo, current: int, target: int, now: float, grown: bool = False
) -> DomainMemo:
    """Record a target the daemon is about to apply. The mark restarts when the direction
    changes or the domain is being retried after a stuck period, so a retry gets a full
    `stuck_after` to show progress. A shrink is remembered (`shrunk_at`): faults that
    follow it are blamed on it; `grown` True: so is a grow for pressure or demand
    (`grown_at`, the grow cooldown)."""
    retried = memo.stuck_until is not None and memo.stuck_until <= now
    # A retry keeps its strikes (the next stuck period is longer) but is no longer stuck.
    stuck_until = None if retried else memo.stuck_until
    mark, mark_at = memo.mark_current, memo.mark_at
    old = memo.target
    if reached(target, current):
        mark = mark_at = None
    elif (
        retried
        or mark is None
        or mark_at is None
        or old is None
        or (old > current) != (target > current)
    ):  # a new direction, a retry or no mark yet: the mark restarts here
        mark, mark_at = current, now
    return memo._replace(
        target=target,
        target_at=now,
        mark_current=mark,
        mark_at=mark_at,
        stuck_until=stuck_until,
        shrunk_at=now if target < current else memo.shrunk_at,
        grown_at=now if grown else memo.grown_at,
    )
