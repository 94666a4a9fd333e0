"""First pass of a tick: what each domain is (left alone, or a claimant) and what it wants.

A domain is left alone (`Fixed`: the core does not act on it this tick) when it is busy (not
running, or a hypervisor job), held, disabled by policy, stuck, or implausibly sized.
Otherwise it is a *claimant* (`Claim`): it has a `want` in [floor, ceiling], a `need` (its
demand alone, what fair shares are of) and a `low` below which the sharing step may not push
it (its floor; its current size when the data is bad; a guest that swaps is kept at its size
by the swap guard of step 4 instead, unless it owes memory to a fair share). Either way the
progress of a target issued earlier is followed first (`balloond.core.progress`), and a
claimant's memo carries this tick's readings to the next.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from balloond.core import explain, progress
from balloond.core.estimate import Estimate, estimate
from balloond.core.signals import SWAP_IN_GUARD, usual_fault_rate
from balloond.core.state import DomainMemo
from balloond.core.want import Want, blind, cooled, held_peak, wanted
from balloond.model import (
    DomainDecision,
    DomainSnapshot,
    DomainState,
    Explanation,
    Hold,
    MemoryStats,
    Reason,
)
from balloond.policy.model import Policy

RUNNING = (DomainState.RUNNING, DomainState.BLOCKED)
# States in which an issued target may still be taken later (the promise stands).
ALIVE = (*RUNNING, DomainState.PAUSED, DomainState.PMSUSPENDED)


class Claim(NamedTuple):
    """A domain the law decides this tick, as the first pass found it."""

    dom: DomainSnapshot
    policy: Policy
    floor: int
    ceiling: int
    in_force: int  # the target the hypervisor is working toward now
    promise: int  # memory promised earlier and not yet taken
    est: Estimate
    want: Want
    guard: bool  # the swap guard forbids shrinking
    retry: bool  # stuck before and due for a retry: re-issue whatever the law says
    memo: DomainMemo  # for the next tick, as if the domain does not move


class Fixed(NamedTuple):
    """A domain left alone this tick: its decision is final."""

    decision: DomainDecision
    memo: DomainMemo
    promise: int  # memory promised to it and not yet taken (counts as taken)


def classify(
    dom: DomainSnapshot,
    policy: Policy,
    memo: DomainMemo,
    hold: Hold | None,
    bounds: tuple[int, int],
    now: float,
    stale_after: float,
    stuck_after: float = 30.0,
    cooldown: bool = True,
) -> Claim | Fixed:
    """Steps 1 and 2 for one domain. `memo` is its memo from the previous tick, `bounds` its
    policy's (floor, ceiling) for its maxmem. `cooldown` False: the grow cooldown does not
    apply this tick (the host is below its reserve)."""
    memo = progress.never_permanent(memo, now)
    alive = dom.state in ALIVE
    if alive:
        memo = progress.track(memo, dom.current, now, stuck_after)
    else:
        memo = progress.gone(memo, dom.current, now, stuck_after)
    # The target the hypervisor works toward: the one issued earlier, while the domain lives
    # to take it (the part not taken yet is promised to it), else its size.
    in_force, promise = dom.current, 0
    if memo.target is not None and alive:
        in_force, promise = memo.target, max(0, memo.target - dom.current)
    fixed = left_alone(dom, policy, memo, hold, bounds, now, in_force, promise)
    if fixed is not None:
        return fixed
    return claim(dom, policy, memo, bounds, now, stale_after, cooldown, in_force, promise)


def left_alone(
    dom: DomainSnapshot,
    policy: Policy,
    memo: DomainMemo,
    hold: Hold | None,
    bounds: tuple[int, int],
    now: float,
    in_force: int,
    promise: int,
) -> Fixed | None:
    """The decision of a domain the core leaves alone this tick, or None for a claimant."""
    cur = dom.current
    held = hold is not None and hold.active(now)
    target = cur
    if held and hold is not None and hold.target is not None:
        # A pinned size is promised whatever the domain is doing now: a paused guest takes
        # it when it resumes.
        promise = max(promise, hold.target - cur)
    why: Explanation | str
    if dom.state not in RUNNING or dom.job is not None:
        reason, why = Reason.BUSY, Explanation(explain.busy, (dom.state, dom.job, cur))
    elif dom.maxmem <= 0 or cur <= 0:
        reason = Reason.NO_DATA
        why = f"left alone: implausible size (current {cur}, maxmem {dom.maxmem} bytes)"
    elif held and hold is not None:
        target = hold.target if hold.target is not None else cur
        reason, why = Reason.HOLD, Explanation(explain.held, (hold, cur))
    elif not policy.enabled:
        reason, why = Reason.DISABLED, Explanation(explain.disabled, (cur, policy.name))
    elif memo.stuck_until is not None and memo.stuck_until > now:
        facts = (cur, memo.target, memo.stuck_until, memo.strikes)
        reason, why = Reason.STUCK, Explanation(explain.stuck, facts)
    else:
        return None
    decision = DomainDecision(
        name=dom.name,
        uuid=dom.uuid,
        reason=reason,
        policy=policy.name,
        current=cur,
        target=target,
        floor=bounds[0],
        ceiling=bounds[1],
        why=why,
    )
    return Fixed(decision=decision, memo=memo, promise=promise)


def claim(
    dom: DomainSnapshot,
    policy: Policy,
    memo: DomainMemo,
    bounds: tuple[int, int],
    now: float,
    stale_after: float,
    cooldown: bool,
    in_force: int,
    promise: int,
) -> Claim:
    """A claimant: its estimate, its want, and its memo for the next tick."""
    cur = dom.current
    floor, ceiling = bounds
    stats_at = sampled_at(dom.stats, now)
    est = estimate(dom, policy, memo, now, stale_after, stats_at)
    guard = swap_guarded(policy, est)
    if est.demand is None:
        want = blind(cur, floor, ceiling)
        peak, peak_at = memo.peak, memo.peak_at
    else:
        peak, peak_at = held_peak(memo.peak, memo.peak_at, est.demand, now), now
        want = wanted(est, policy, peak, cur, in_force, floor, ceiling)
    if cooldown and not guard:
        want = cooled(want, memo.grown_at, now, cur, in_force, ceiling)
    return Claim(
        dom=dom,
        policy=policy,
        floor=floor,
        ceiling=ceiling,
        retry=memo.stuck_until is not None,
        in_force=in_force,
        promise=promise,
        est=est,
        guard=guard,
        memo=remembered(memo, dom, est, peak, peak_at, stats_at, now),
        want=want,
    )


def sampled_at(stats: MemoryStats | None, now: float) -> float:
    """When the balloon statistics were sampled: their own clock if believable, else now."""
    at = None if stats is None else stats.last_update
    if at is None or not 0.0 < at < math.inf:  # a positive, finite clock
        return now
    return at


def swap_guarded(policy: Policy, est: Estimate) -> bool:
    """The policy's swap guard: a guest swapping in (any sustained rate) is not shrunk."""
    rate = est.swap_in_rate
    return policy.swap_guard and rate is not None and rate >= SWAP_IN_GUARD


def _counter(value: int | None) -> int | None:
    """A cumulative counter kept for the next tick's rate; a negative one is garbage."""
    return value if value is not None and value >= 0 else None


def remembered(
    memo: DomainMemo,
    dom: DomainSnapshot,
    est: Estimate,
    peak: int | None,
    peak_at: float | None,
    stats_at: float,
    now: float,
) -> DomainMemo:
    """A claimant's memo for the next tick: this tick's counters (for rates), the held demand
    peak, the usual fault rate, learned hidden demand and overhead, and the balloon size seen
    (with when it was first seen at that size); the target and stuck marks as they are."""
    stats = dom.stats
    swap_in = None if stats is None else _counter(stats.swap_in)
    swap_out = None if stats is None else _counter(stats.swap_out)
    faults = None if stats is None else _counter(stats.major_faults)
    cur = dom.current
    same_size = memo.seen_current == cur and memo.current_since
    return memo._replace(
        swap_in=swap_in,
        major_faults=faults,
        counters_at=stats_at if swap_in is not None or faults is not None else None,
        peak=peak,
        peak_at=peak_at,
        hidden=est.hidden or None,
        hidden_at=now if est.hidden else None,
        fault_base=usual_fault_rate(memo, est.major_fault_rate, now),
        overhead=est.overhead_learned,
        overhead_seen=est.overhead_seen,
        seen_current=cur,
        current_since=memo.current_since if same_size else now,
        pressed=est.pressed,
        pressed_at=est.pressed_at,
        swap_out=swap_out,
    )
