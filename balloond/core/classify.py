"""First pass of a tick: what each domain is (left alone, or a claimant) and what it wants.

A domain is *fixed* (the core does not act on it this tick) when it is busy (not running, or a
hypervisor job), held, disabled by policy, stuck, or has no data and sits within its range.
Otherwise it is a *claimant*: it has a `want` in [floor, ceiling] and a `low` below which the
sharing step may not push it (its floor; its current size when the data is bad or it swaps).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import inf as INF

from balloond.core import explain
from balloond.core.deferred import Text
from balloond.core.estimate import (
    SHRINK_BLAME,
    SWAP_IN_GUARD,
    Estimate,
    Reading,
    reading,
)
from balloond.core.progress import marks, track
from balloond.core.state import MEMO_ARITY, STUCK_BACKOFF_CAP, DomainMemo
from balloond.model import DomainSnapshot, DomainState, Hold, Reason
from balloond.policy.model import Policy

# Tuples, not sets: membership then tests identity first, while hashing an Enum member runs
# Python code (this is checked for every domain every tick). Most domains run: the hot
# tests try `state is RUN` before the tuple.
RUN = DomainState.RUNNING
RUNNING = (DomainState.RUNNING, DomainState.BLOCKED)
# States in which an issued target may still be taken later (the promise stands).
ALIVE = (*RUNNING, DomainState.PAUSED, DomainState.PMSUSPENDED)
# Held demand decays toward lower readings with this half-life (seconds).
PEAK_HALF_LIFE = 60.0
# Weight of each new reading in the usual major-fault rate (an exponential average).
FAULT_BASE_WEIGHT = 0.2
# classify unpacks a DomainMemo (as `memo[:]`: an exact tuple unpacks without the iterator a
# NamedTuple goes through) and an estimate's fields (`estimate.reading`, a plain tuple) in
# one step each, where reading a NamedTuple's fields by name costs a descriptor call each,
# and builds the next memo with tuple.__new__ (no NamedTuple.__new__): it runs for every
# domain every tick.
_new_tuple, _new_object = tuple.__new__, object.__new__
if (
    MEMO_ARITY != 20
    or len(Estimate._fields) != 15
    or Estimate._fields[:4] != ("demand", "raw", "source", "pressure")  # read by index too
):
    raise RuntimeError(f"DomainMemo or Estimate changed; update {__name__}")
# Enum members bound once: reading one off its class costs as much as a small function call.
STEADY, NO_DATA, GUEST_REQUEST = Reason.STEADY, Reason.NO_DATA, Reason.GUEST_REQUEST
FLOOR, CEILING, SHRINK_IDLE = Reason.FLOOR, Reason.CEILING, Reason.SHRINK_IDLE
GROW_PRESSURE, GROW_DEMAND = Reason.GROW_PRESSURE, Reason.GROW_DEMAND
# Learned hot cache gets this share of the policy buffer (it is a measured need already).
CACHE_BUFFER = 0.25
# After a grow for pressure or demand, neither shrink the domain nor lower the grow in flight
# for this long (unless the host is below its reserve). Senpai backs off at once and probes
# down slowly; here a grow takes a stats period or two (2 s each) to reach the balloon and
# show in MemTotal, and readings taken meanwhile mix the old and new sizes (the lab's guest
# was shrunk back on such readings and OOM-killed). 30 s spans several ticks and stats periods
# and is short against the 60 s half-life of the held demand peak, which slows shrinks anyway.
GROW_COOLDOWN = 30.0


@dataclass(slots=True, eq=False)
class Work:
    """One domain's decision in the making (mutable, private to a tick)."""

    dom: DomainSnapshot
    policy: Policy
    memo: DomainMemo
    floor: int
    ceiling: int
    reason: Reason
    target: int
    explanation: Text = ""  # text, or a recipe for it (balloond.core.deferred)
    act: bool = False
    promise: int = 0  # memory promised earlier and not yet taken
    values: Reading | None = None  # the Estimate's fields; None: left alone (*fixed*)
    want: int = 0
    low: int = 0
    in_force: int = 0  # the target the hypervisor is working toward now
    guard: bool = False  # swap guard forbids shrinking
    clamp: str = ""  # "floor" or "ceiling" when the policy range bounds the want
    retry: bool = False  # stuck before and due for a retry: re-issue whatever the law says
    cooling: float | None = None  # seconds since a grow whose cooldown keeps the domain up

    @property
    def est(self) -> Estimate | None:
        """The estimate, built when read: only explanations read it."""
        values = self.values
        return None if values is None else _new_tuple(Estimate, values)


# A policy's knobs for one maxmem (`limits_for`): floor, ceiling and the buffer's factors.
Limits = tuple[int, int, float, float]


def limits_for(policy: Policy, maxmem: int) -> Limits:
    """(floor, ceiling, 1 + buffer, 1 + buffer x CACHE_BUFFER): resolved once per policy and
    maxmem each tick, not once per domain."""
    maxmem = max(maxmem, 0)
    buffer = policy.buffer
    return (
        policy.floor_for(maxmem),
        policy.ceiling_for(maxmem),
        1.0 + buffer,
        1.0 + buffer * CACHE_BUFFER,
    )


def classify(
    dom: DomainSnapshot,
    policy: Policy,
    memo: DomainMemo,
    hold: Hold | None,
    limits: Limits,
    now: float,
    stale_after: float,
    stuck_after: float = 30.0,
    cooldown: bool = True,
) -> Work:
    """`memo` is the domain's memo from the previous tick, `limits` the policy's knobs for its
    maxmem (`limits_for`). `cooldown` False: the grow cooldown does not apply this tick (the
    host is below its reserve).

    Steps 1 and 2 for one domain: the progress of a target issued earlier (`progress.marks`
    on the unpacked memo; `_progress` when a mark is capped or the domain is gone), then
    what the domain is and wants. The claimant's whole first pass in one function on plain
    locals, the memo unpacked once, its Work built once at the end (no Work filled in field
    by field, no helper call per step, no NamedTuple field read by name, which costs a
    descriptor call): it runs for every domain every tick. Domains left alone take
    `_left_alone`, off the hot path."""
    cur, maxmem, state = dom.current, dom.maxmem, dom.state
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
        learned,
        seen_gap,
        seen,
        since,
        grown_at,
    ) = memo[:]
    alive = state is RUN or state in ALIVE
    tracked = False  # the marks below are newer than `memo`'s
    if (stuck_until is not None and stuck_until > now + STUCK_BACKOFF_CAP) or (
        target is not None and not alive
    ):  # rare: a stuck mark to cap, or a domain gone (its memo starts again)
        memo = _progress(memo, dom, now, stuck_after)
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
            learned,
            seen_gap,
            seen,
            since,
            grown_at,
        ) = memo
    elif target is not None and (mark_at is not None or strikes or target != cur):
        # On its way to a target (most domains at boot; most have none later, or have reached
        # it with no mark): the marks are tracked on the locals, which the next memo is built
        # from below, instead of on a memo built for them.
        mark, mark_at, stuck_until, strikes = marks(
            target, mark, mark_at, stuck_until, strikes, cur, now, stuck_after
        )
        tracked = True
    floor, ceiling, grow, cache_grow = limits
    if target is not None and alive:
        in_force, promise = target, (target - cur if target > cur else 0)
    else:
        in_force, promise = cur, 0
    if (
        hold is not None
        or not (state is RUN or state in RUNNING)
        or dom.job is not None
        or maxmem <= 0
        or cur <= 0
        or not policy.enabled
        or (stuck_until is not None and stuck_until > now)
    ):
        if tracked:  # off the hot path: the memo a domain left alone keeps
            memo = memo._replace(
                mark_current=mark, mark_at=mark_at, stuck_until=stuck_until, strikes=strikes
            )
        fixed = _left_alone(dom, policy, memo, hold, limits, now, in_force, promise)
        if fixed is not None:
            return fixed
    stats = dom.stats
    # When the balloon statistics were sampled: their own clock if believable, else now.
    at = stats.last_update if stats is not None else None
    if at is None or not 0.0 < at < INF:  # not isfinite(at) or at <= 0 (NaN fails both)
        at = now
    values = reading(
        dom,
        policy.pressure_target,
        now,
        stale_after,
        at,
        swap_in,
        faults,
        counters_at,
        target,
        hidden,
        hidden_at,
        shrunk_at,
        base,
        learned,
        seen_gap,
        seen,
        since,
    )
    (
        demand,
        _,
        _,
        _,
        swap_rate,
        fault_rate,
        short,
        requested,
        why,
        _,
        hidden,
        _,
        used,
        learned,
        seen_gap,
    ) = values
    # Carry the guest counters, the held demand peak and the overhead to the next tick.
    above = 0  # the held peak when it is above demand, else 0
    if demand is not None:
        if peak is None or peak_at is None or demand >= peak:
            peak = demand
        else:
            age = now - peak_at  # min() and max() spelled out here: see `estimate`
            keep = 0.5 ** ((age if age > 0.0 else 0.0) / PEAK_HALF_LIFE)
            peak = demand + int((peak - demand) * keep)
            if peak > demand:
                above = peak
        peak_at = now
    swap_in = faults = None
    if stats is not None:
        swap_in, faults = stats.swap_in, stats.major_faults
        if swap_in is not None and not swap_in >= 0:
            swap_in = None
        if faults is not None and not faults >= 0:
            faults = None
    if fault_rate is not None and not (shrunk_at is not None and now - shrunk_at <= SHRINK_BLAME):
        base = fault_rate if base is None else base + (fault_rate - base) * FAULT_BASE_WEIGHT
    memo = _new_tuple(
        DomainMemo,
        (
            swap_in,
            faults,
            at if swap_in is not None or faults is not None else None,
            peak,
            peak_at,
            target,
            target_at,
            mark,
            mark_at,
            stuck_until,
            strikes,
            hidden or None,
            now if hidden else None,
            shrunk_at,
            base,
            learned,
            seen_gap,
            cur,
            since if seen == cur and since else now,
            grown_at,
        ),
    )
    guard = policy.swap_guard and swap_rate is not None and swap_rate >= SWAP_IN_GUARD
    clamp = ""
    explanation: Text = ""
    reason: Reason
    if demand is None:
        # Never shrink on bad data; only the policy range itself may move the domain.
        want = cur if cur > floor else floor  # min(max(cur, floor), ceiling) spelled out
        if want > ceiling:
            want = ceiling
        low = want
        reason = NO_DATA
        explanation = (explain.no_data, (cur, why))
    else:
        # Demand plus the buffer, as a balloon size (+ the overhead: demand is in the guest's
        # terms). The buffer is headroom for demand to grow into; hot cache learned from a
        # stall is already a measured need (cache swells and shrinks with what it is given),
        # so it gets only a quarter of the buffer. Without learned cache the same float
        # operations less an added 0.0, which changes no sum here.
        if hidden:
            cache = hidden if hidden < demand else demand
            want = int((demand - cache) * grow + cache * cache_grow) + used
        else:
            want = int(demand * grow) + used
        if above:  # the held peak, just carried forward
            # The held peak keeps a guest from being shrunk into the trough of a workload
            # that comes back; it never grows one (the lab's light guest, its workload
            # OOM-killed, was grown back on the peak of the workload that had died).
            has = in_force if in_force > cur else cur
            if hidden:  # the want of the peak, as above
                cache = hidden if hidden < above else above
                kept = int((above - cache) * grow + cache * cache_grow) + used
            else:
                kept = int(above * grow) + used
            if has < kept:
                kept = has
            if kept > want:
                want = kept
        if requested is not None and policy.self_adjust:
            want, reason = requested, GUEST_REQUEST
        else:  # the direction of the want from the current size
            reason = (
                (GROW_PRESSURE if short else GROW_DEMAND)
                if want > cur
                else (SHRINK_IDLE if want < cur else STEADY)
            )
        # FLOOR / CEILING name the reason only when the bound itself moves the domain; a guest
        # shrinking toward its floor from far above is still shrinking because it is idle.
        # Otherwise the reason is the direction of the bound from the current size, written
        # out (many domains at boot are clamped): the floor is not above it, the ceiling not
        # below it.
        if want < floor:
            want, clamp = floor, "floor"
            reason = FLOOR if cur < floor else (SHRINK_IDLE if floor < cur else STEADY)
        elif want > ceiling:
            want, clamp = ceiling, "ceiling"
            reason = (
                CEILING
                if cur > ceiling
                else ((GROW_PRESSURE if short else GROW_DEMAND) if ceiling > cur else STEADY)
            )
        low = floor
        if guard:  # max(floor, min(cur, ceiling)) spelled out
            low = cur if cur < ceiling else ceiling
            if low < floor:
                low = floor
    retry = stuck_until is not None  # stuck before and due for a retry
    cooling = None
    if cooldown and grown_at is not None and 0.0 <= now - grown_at < GROW_COOLDOWN and not guard:
        # Within GROW_COOLDOWN of a grow for pressure or demand, the domain's own estimate may
        # not take back what it has or was promised: its want is at least that. Only the want:
        # when the host cannot cover every want, sharing by weight may still cut it (the
        # real-VM lab's contention run starved the heavier guest when cooling guests were kept
        # whole). Not applied while the host is below its reserve (it needs memory back) nor
        # under the swap guard (which keeps the domain at its size anyway).
        keep = cur if cur > in_force else in_force
        if keep > ceiling:
            keep = ceiling
        if want < keep:
            want, cooling = keep, now - grown_at
            if reason is SHRINK_IDLE:
                reason = STEADY
    # Stored one by one into a bare instance: cheaper than the dataclass __init__'s call. One
    # statement per slot: a multiple assignment of more than three builds and unpacks a tuple.
    work = _new_object(Work)
    work.dom = dom
    work.policy = policy
    work.memo = memo
    work.floor = floor
    work.ceiling = ceiling
    work.reason = reason
    work.target = cur
    work.explanation = explanation
    work.act = False
    work.promise = promise
    work.values = values
    work.want = want
    work.low = low
    work.in_force = in_force
    work.guard = guard
    work.clamp = clamp
    work.retry = retry
    work.cooling = cooling
    return work


def _progress(memo: DomainMemo, dom: DomainSnapshot, now: float, stuck_after: float) -> DomainMemo:
    """Step 1: the memo with the progress of a target issued earlier tracked (stuck marks,
    `progress.track`)."""
    latest = now + STUCK_BACKOFF_CAP
    if memo.stuck_until is not None and memo.stuck_until > latest:
        memo = memo._replace(stuck_until=latest)  # never permanent
    if memo.target is not None:
        alive = dom.state in ALIVE
        if memo.mark_at is not None or memo.strikes or not alive or memo.target != dom.current:
            memo = track(memo, dom.current, now, stuck_after)
            if not alive:
                memo = DomainMemo(strikes=memo.strikes, stuck_until=memo.stuck_until)
    return memo


def _left_alone(
    dom: DomainSnapshot,
    policy: Policy,
    memo: DomainMemo,
    hold: Hold | None,
    limits: Limits,
    now: float,
    in_force: int,
    promise: int,
) -> Work | None:
    """The Work of a domain the core leaves alone this tick, or None when it is a claimant
    after all (its hold has expired)."""
    cur, maxmem = dom.current, dom.maxmem
    work = Work(
        dom, policy, memo, limits[0], limits[1], STEADY, cur, promise=promise, in_force=in_force
    )
    held = hold is not None and hold.active(now)
    if held and hold is not None and hold.target is not None:
        # A pinned size is promised whatever the domain is doing now: a paused guest takes
        # it when it resumes.
        work.promise = max(work.promise, hold.target - cur)
    if dom.state not in RUNNING or dom.job is not None:
        return _fixed(work, Reason.BUSY, (explain.busy, (dom.state, dom.job, cur)))
    if maxmem <= 0 or cur <= 0:
        text = f"left alone: implausible size (current {cur}, maxmem {maxmem} bytes)"
        return _fixed(work, NO_DATA, text)
    if held and hold is not None:
        if hold.target is not None:
            work.target = hold.target
        return _fixed(work, Reason.HOLD, (explain.held, (hold, cur)))
    if not policy.enabled:
        return _fixed(work, Reason.DISABLED, (explain.disabled, (cur, policy.name)))
    if memo.stuck_until is not None and memo.stuck_until > now:
        recipe = (explain.stuck, (cur, memo.target, memo.stuck_until, memo.strikes))
        return _fixed(work, Reason.STUCK, recipe)
    return None


def _fixed(work: Work, reason: Reason, text: Text) -> Work:
    work.reason, work.explanation = reason, text
    return work
