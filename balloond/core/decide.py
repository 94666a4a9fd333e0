"""The control law: one tick's decision from a snapshot, the policies and the controller state.

Pure: no clock (`now` is passed in), no I/O, no logging, no hypervisor. Steps:

1. Track progress of targets issued earlier (stuck detection, `progress.marks`; done per
   domain by `classify`, which unpacks the domain's memo once for both steps).
2. Classify every domain (`classify.classify`): busy, held, disabled and stuck domains are left
   alone; the others are claimants with a `want` (demand x (1 + buffer), or the guest's own
   request, clamped to [floor, ceiling]).
3. Share the pool by weight (`share.water_fill`): the pool is what claimants hold now plus
   what the host can still give (free - reserve - promises to everyone else - the untouched
   part of every balloon, `backing.untouched`: host free still counts it although the guest
   owns it; QEMU's own share of its rss is learned per process, `backing.learn`). Nobody
   goes below its floor; a guest without usable data or one that swaps is not pushed below
   its size.
4. Rate limits: shrink at most `max_shrink_step` per tick (lifted for idle guests while the
   host is below its reserve), grow at most `max_grow_step` (default: at once), no shrink while
   the guest swaps in (`swap_guard`), no action within the `deadband` of the target in force,
   nor one within the deadband of the balloon's size that lowers a grow in flight. A domain
   grown for pressure or demand is not shrunk for GROW_COOLDOWN seconds (nor its grow in
   flight lowered) unless the host is below its reserve.
5. Grow budget: new promises never exceed host free - reserve - promises still outstanding
   - balloon memory the host does not back yet (balloon + QEMU overhead - QEMU rss).
   Memory that shrinks free is not counted until the host reports it free (shrinks and grows
   are issued together, shrinks first, but a grow never relies on a shrink having happened).
   Growth is shared by weight, floors first.

Budget invariant (tested): whenever any domain's commitment grows in a tick,
sum over domains of max(0, commitment - current) <= host.free - reserve after the tick, where
a domain's commitment is the larger of its current size and the target in force for it.
With `rss` known the bound is tighter still: the untouched part of the balloons counts too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

from balloond.core import explain, progress
from balloond.core.backing import account
from balloond.core.classify import GROW_COOLDOWN, Limits, Work, classify, limits_for
from balloond.core.deferred import Text, decided, realize
from balloond.core.explain import sz
from balloond.core.progress import MiB
from balloond.core.share import water_fill
from balloond.core.state import ControllerState, DomainMemo
from balloond.model import Decision, DomainDecision, DomainSnapshot, Hold, Reason, Snapshot
from balloond.policy.model import Amount, Policy
from balloond.units import format_sizes_apart

# In a host deficit, claimants cut by contention shrink at this multiple of their usual step.
DEFICIT_STEP_FACTOR = 2
GROWN = (Reason.GROW_PRESSURE, Reason.GROW_DEMAND, Reason.CONTENTION)
# Enum members bound once: reading one off its class costs as much as a small function call,
# and the steps below test them for every claimant every tick.
CONTENTION, SWAP_GUARD, NO_DATA, STEADY = (
    Reason.CONTENTION,
    Reason.SWAP_GUARD,
    Reason.NO_DATA,
    Reason.STEADY,
)
SHRINK_IDLE, GUEST_REQUEST, FLOOR, CEILING = (
    Reason.SHRINK_IDLE,
    Reason.GUEST_REQUEST,
    Reason.FLOOR,
    Reason.CEILING,
)
# A policy's shrink step (size, ratio), grow step and deadband (size, ratio): see `_knobs`.
Knobs = tuple[int | None, float, Amount | None, int | None, float]
KEEPS_ITS_TEXT = (NO_DATA, SWAP_GUARD, CONTENTION)  # a steady domain keeps these and their text


def decide(
    snapshot: Snapshot,
    policy_for: Callable[[DomainSnapshot], Policy],
    state: ControllerState,
    *,
    reserve: int,
    holds: Mapping[str, Hold],
    now: float,
    stale_after: float = 15.0,
    stuck_after: float = 30.0,
) -> tuple[Decision, ControllerState]:
    """Decide one tick. Returns the decision (every domain, with reasons) and the next state.

    The next state assumes every action is applied; when one is not (dry run, a failed
    setMemory), call `state.forget_target(uuid)` on it.
    """
    works: list[Work] = []
    claimants: list[Work] = []
    # limits_for() once per policy and maxmem: id(policy) -> maxmem -> limits. Most domains
    # share their neighbour's policy: its table is looked up only when the policy changes.
    bounds: dict[int, dict[int, Limits]] = {}
    last: Policy | None = None
    by_maxmem: dict[int, Limits] = {}
    # Bound once: this loop runs for every domain every tick.
    memo_of, hold_of, add, claim = state.domains.get, holds.get, works.append, claimants.append
    empty = DomainMemo()
    host_free = snapshot.host.free
    # The host itself is short (not merely promised out): idle guests give back at once, and
    # the grow cooldown does not hold anyone up.
    deficit = host_free < reserve
    cooldown = not deficit
    unbacked = 0  # promised to guests (inside their balloons) but not yet taken from the host
    # Sums for steps 3 and 5, taken here rather than by a list per sum after the loop; the
    # promises of claimants (`claimed`) and of the others (`fixed_promises`) apart.
    fixed_promises = claimed = held = lows = wants = 0
    backing_of, backing = state.backing.get, {}
    # Most ticks have no hold, and hosts that charge the whole balloon at once have nothing
    # learned of their QEMU processes: no lookup per domain then.
    any_hold, any_known = bool(holds), bool(state.backing)
    for dom in snapshot.domains:
        uuid = dom.uuid
        stats = dom.stats
        known = backing_of(uuid) if any_known else None
        # With nothing learned yet, an rss equal to the balloon teaches nothing and leaves
        # nothing untouched (`account` gives None, 0): hosts that charge the whole balloon at
        # once (Xen, the simulator) report exactly that for every domain every tick.
        if known is not None or (
            stats is not None and (rss := stats.rss) is not None and rss != dom.current
        ):
            known, unseen = account(dom, known)
            if known is not None:
                backing[uuid] = known
            unbacked += unseen
        policy = policy_for(dom)
        if policy is not last:
            found = bounds.get(id(policy))
            if found is None:
                found = bounds[id(policy)] = {}
            by_maxmem, last = found, policy
        limits = by_maxmem.get(dom.maxmem)
        if limits is None:
            limits = by_maxmem[dom.maxmem] = limits_for(policy, dom.maxmem)
        # Steps 1 and 2: the progress of targets issued earlier is tracked there too.
        work = classify(
            dom,
            policy,
            memo_of(uuid, empty),
            hold_of(uuid) if any_hold else None,
            limits,
            now,
            stale_after,
            stuck_after,
            cooldown,
        )
        add(work)
        # Most domains have no promise: no sum of a zero (sizes are multi-digit ints, whose
        # sums the interpreter does not take on its fast path).
        promise = work.promise
        if work.values is not None:  # a claimant
            claim(work)
            if promise:
                claimed += promise
            held += dom.current
            lows += work.low
            wants += work.want
        elif promise:
            fixed_promises += promise
    # Host free counts untouched balloon memory as free; the guests will take it without any
    # grant, so it is not there to give (qmemman's "promised but not taken").
    room = host_free - unbacked - reserve
    spare = room - fixed_promises - claimed
    notes: list[str] = []
    if unbacked > 0:
        notes.append(
            f"{sz(unbacked)} inside guests' balloons is not yet backed by the host "
            "(balloon + QEMU overhead - QEMU rss): counted as taken, "
            "not free"
        )
    if deficit:
        notes.append(
            f"host free {sz(host_free)} is below the reserve {sz(reserve)}: "
            "idle guests shrink to demand + buffer at once, nothing grows"
        )
    elif spare < 0:
        notes.append(
            f"promises outstanding exceed host free {sz(host_free)} minus the reserve "
            f"{sz(reserve)}{' and the untouched balloons' if unbacked else ''}: "
            "nothing grows until they are taken"
        )
    pool = room - fixed_promises + held
    if lows > pool and claimants:
        notes.append(f"floors need {sz(lows)} but only {sz(max(pool, 0))} is available")
    shared = wants > pool  # otherwise every claimant gets its want (water_fill's first case)
    if shared:
        _share(claimants, pool)
    out, memos, places, movers = _limit(works, deficit=deficit, shared=shared)
    budget = _grant(movers, spare)
    for index, work in zip(places, movers, strict=True):
        out[index] = _finish(work, now, memos)
    # Every place is filled now: the movers' last.
    decisions = cast("tuple[DomainDecision, ...]", tuple(out))
    decision = Decision(
        taken_at=now,
        domains=decisions,
        host_free=host_free,
        reserve=reserve,
        budget=max(0, budget),
        notes=tuple(notes),
    )
    return decision, ControllerState.of(memos, backing)


def _share(claimants: list[Work], pool: int) -> None:
    """Set each claimant's `target` to its weighted share of the pool (step 3), when the pool
    does not cover every want."""
    lows = [w.low for w in claimants]
    alloc = water_fill(
        lows, [w.want for w in claimants], [w.policy.weight for w in claimants], pool
    )
    for work, share in zip(claimants, alloc, strict=True):
        work.target = share
        if share < work.want:
            work.reason = CONTENTION
            work.explanation = (_contention, (share, work.want, work.policy.weight))


def _limit(
    works: list[Work], *, deficit: bool, shared: bool
) -> tuple[list[DomainDecision | None], dict[str, DomainMemo], list[int], list[Work]]:
    """Apply step limits, the swap guard and the deadband (step 4) to every claimant (whose
    target is its want unless the pool was `shared`); the claimants that do not move are
    steady. Returns every domain's decision and next memo, in order, except that the
    decisions of the domains that move are left None (their places are given in the list
    before them, in order: `_grant` may still cut them).

    One loop over every domain with each policy's step and deadband knobs read once per
    tick (`_knobs`), `Amount.resolve` and the deadband test written out, and the decision
    of a domain that does not move built in the same pass: this runs for every domain every
    tick, and most end steady or left alone."""
    out: list[DomainDecision | None] = []
    add = out.append
    memos: dict[str, DomainMemo] = {}
    places: list[int] = []  # of the movers' decisions in `out`
    movers: list[Work] = []
    knobs: dict[int, Knobs] = {}
    last: Policy | None = None  # the policy `known` is of
    known: Knobs = (None, 0.0, None, None, 0.0)
    for work in works:
        dom, policy = work.dom, work.policy
        cur = dom.current
        memos[dom.uuid] = work.memo  # as if nothing moves; `_finish` replaces a mover's
        values = work.values
        if values is None:  # left alone: final already
            add(
                decided(
                    dom.name,
                    dom.uuid,
                    policy.name,
                    work.reason,
                    cur,
                    work.target,
                    work.floor,
                    work.ceiling,
                    work.explanation,
                    None,
                    None,
                    False,
                )
            )
            continue
        if policy is not last:  # most neighbours share a policy: no lookup for them
            found = knobs.get(id(policy))
            if found is None:
                found = knobs[id(policy)] = _knobs(policy)
            known, last = found, policy
        shrink_size, shrink_ratio, grow_step, band_size, band_ratio = known
        goal = work.target if shared else work.want
        floor, ceiling = work.floor, work.ceiling
        new = goal
        limit: Amount | None = None  # the step that held the move back, for its explanation
        if goal < cur:
            step = shrink_size if shrink_size is not None else int(cur * shrink_ratio)
            if deficit and work.reason is CONTENTION:
                step *= DEFICIT_STEP_FACTOR
            elif deficit:
                step = cur  # idle guests give back at once while the host is short
            new = cur - step if cur - step > goal else goal  # min() and max() spelled out: hot
            if ceiling < new:
                new = ceiling
            if new > goal:
                limit = policy.max_shrink_step
            if work.guard and new < min(cur, ceiling):
                new = min(cur, ceiling)
                work.reason = SWAP_GUARD
                rate = sz(int(work.est.swap_in_rate or 0)) if work.est else "?"
                work.explanation = f"kept at {sz(cur)}: swapping in {rate}/s (swap guard)"
        elif goal > cur and grow_step is not None:
            new = max(min(goal, cur + grow_step.resolve(cur)), min(goal, floor))
            if new < goal:
                limit = grow_step
        in_force = work.in_force
        retried = work.retry and (new != cur or in_force != cur)
        if not retried:
            if new == in_force:
                steady = True
            elif floor <= cur <= ceiling:
                # Too small a move to make: within the deadband of the target in force, or
                # within the deadband of the balloon's size and lowering the target in force
                # without extending a shrink (that would cancel a grow in flight for nothing:
                # the lab's "shrink 286 MiB → 286 MiB (-820 B)"). Raising the target in force
                # is never held back here: it only stops a shrink or extends a grow, and the
                # deadband of the target in force still applies to it.
                band = band_size if band_size is not None else int(cur * band_ratio)
                steady = -band < new - in_force < band or (  # abs() spelled out: hot
                    new < in_force and -band < new - cur < band and not in_force < cur
                )
            else:
                steady = False
            if steady:  # no move: the target in force stands
                reason = work.reason
                text = work.explanation
                if reason not in KEEPS_ITS_TEXT:
                    # Texts are built when read (most never are): a recipe, which holds the
                    # work, final once decided (the work does not hold the recipe: no cycle).
                    # Within MiB the balloon has reached its target whatever the target (the
                    # tolerance is at least that): most do, without dividing a large int.
                    gap = in_force - cur
                    reached = -MiB <= gap <= MiB
                    if not reached:
                        tolerance = in_force // 100  # progress.reach_tolerance() spelled out
                        if tolerance < MiB:
                            tolerance = MiB
                        reached = -tolerance <= gap <= tolerance
                    if reached:
                        text = (_steady_text, (work, reason, new))
                        reason = STEADY
                    else:
                        # Still on its way to a target issued earlier: that target stands, and
                        # so does why.
                        text = (_moving_text, (work, reason))
                work.target = in_force
                add(
                    decided(
                        dom.name,
                        dom.uuid,
                        policy.name,
                        reason,
                        cur,
                        in_force,
                        floor,
                        ceiling,
                        text,
                        values[0],
                        values[3],
                        False,
                    )
                )
                continue
        work.target, work.act = new, True
        places.append(len(out))
        movers.append(work)
        add(None)
        reason = work.reason
        if reason is SWAP_GUARD:
            continue
        if reason is NO_DATA:
            work.reason = FLOOR if cur < floor else CEILING
        # Written when read, as for steady domains: the work is final once decided (a grow cut
        # later by `_grant` gets a new explanation there).
        work.explanation = (_move_text, (work, reason, work.explanation, limit, retried))
    return out, memos, places, movers


def _knobs(policy: Policy) -> Knobs:
    """A policy's shrink step and deadband as (size, ratio) pairs (an absolute size wins, as
    in `Amount.resolve`), and its grow step."""
    shrink, band = policy.max_shrink_step, policy.deadband
    assert shrink.size is not None or shrink.ratio is not None  # as Amount.resolve asserts
    assert band.size is not None or band.ratio is not None
    return (shrink.size, shrink.ratio or 0.0, policy.max_grow_step, band.size, band.ratio or 0.0)


def _contention(share: int, want: int, weight: int) -> str:
    return f"contention: {sz(share)} of the {sz(want)} wanted, by weight {weight}"


def _moving_text(work: Work, reason: Reason) -> str:
    before, after = format_sizes_apart(work.dom.current, work.in_force)
    return f"moving {before} → {after} (issued earlier): {_why(work, reason)}"


def _steady_text(work: Work, reason: Reason, computed: int) -> str:
    return (
        f"steady at {sz(work.dom.current)}: {_why(work, reason)}; {sz(computed)} is within the "
        f"deadband {explain.amount(work.policy.deadband)} of the target {sz(work.in_force)}"
    )


def _why(work: Work, reason: Reason) -> str:
    est, policy = work.est, work.policy
    if est is None or est.demand is None:
        return "no data"
    if reason is GUEST_REQUEST and est.requested is not None:
        return f"guest requests {sz(est.requested)}"
    growing = work.want > work.dom.current and work.cooling is None
    text = explain.cause(est, policy.buffer, policy.pressure_target, growing)
    if work.cooling is not None:
        text += f"; kept up for {GROW_COOLDOWN:.0f} s after a grow ({work.cooling:.0f} s ago)"
    if work.clamp == "floor":
        text += f", raised to the floor {sz(work.floor)}"
    elif work.clamp == "ceiling":
        text += f", capped at the ceiling {sz(work.ceiling)}"
    return text + (f" ({est.note})" if est.note else "")


def _move_text(work: Work, reason: Reason, prior: Text, limit: Amount | None, retried: bool) -> str:
    """Why a domain moves; `reason` and `prior` are its reason and explanation before
    `_limit` (a move of a domain without usable data is renamed FLOOR or CEILING there)."""
    cur, target = work.dom.current, work.target
    if reason is NO_DATA:
        bound = "floor" if cur < work.floor else "ceiling"
        return explain.move(cur, target, f"no usable data; to the {bound}")
    limited = f"; step limited to {explain.amount(limit)}" if limit is not None else ""
    if retried:
        limited += "; retried after being stuck"
    if reason is CONTENTION:
        return explain.move(cur, target, realize(prior) + limited)
    return explain.move(cur, target, _why(work, reason) + limited)


def _grant(movers: list[Work], spare: int) -> int:
    """Cut growth to what the host can give now, floors first, then by weight (step 5), among
    the claimants that move (`_limit`'s movers, every one acting until cut here). Returns
    what is left of the grow budget."""
    growers: list[Work] = []
    asks: list[int] = []  # each grower's growth beyond what it has or was promised
    freed = 0
    for w in movers:
        # max() spelled out: this runs for every domain that moves (all of them at boot).
        cur, in_force, target = w.dom.current, w.in_force, w.target
        committed = in_force if in_force > cur else cur
        if target > committed:
            growers.append(w)
            asks.append(target - committed)
        else:
            freed += committed - (target if target > cur else cur)
    room = spare + freed
    if sum(asks) <= room:
        return room - sum(asks)
    room = max(0, room)
    weights = [w.policy.weight for w in growers]
    floor_gaps = [
        min(ask, max(0, w.floor - max(w.dom.current, w.in_force)))
        for w, ask in zip(growers, asks, strict=True)
    ]
    first = water_fill([0] * len(growers), floor_gaps, weights, room)
    rest = water_fill(
        [0] * len(growers),
        [a - f for a, f in zip(asks, first, strict=True)],
        weights,
        room - sum(first),
    )
    for work, ask, a, b in zip(growers, asks, first, rest, strict=True):
        _cut_growth(work, ask, a + b)
    return room - sum(first) - sum(rest)


def _cut_growth(work: Work, ask: int, granted: int) -> None:
    if granted >= ask:
        return
    base = max(work.dom.current, work.in_force)
    wanted = work.target
    work.target = base + granted
    work.reason = CONTENTION
    if granted <= 0 or granted < work.policy.deadband.resolve(work.dom.current):
        work.target, work.act = work.in_force, False
        work.explanation = (_waiting, (work.dom.current, wanted))
        return
    work.explanation = explain.move(
        work.dom.current, work.target, f"host can give only {sz(granted)} of {sz(ask)} now"
    )


def _waiting(current: int, wanted: int) -> str:
    return (
        f"waiting at {sz(current)}: wants {sz(wanted)} but the host has no memory to give "
        "above its reserve"
    )


def _finish(work: Work, now: float, memos: dict[str, DomainMemo]) -> DomainDecision:
    """The decision of a domain that moves; its memo for the next tick (as if the action is
    applied) replaces the one `_limit` put in `memos` when it acts."""
    dom, values = work.dom, work.values
    assert values is not None  # only claimants move
    cur, target = dom.current, work.target
    decision = decided(
        dom.name,
        dom.uuid,
        work.policy.name,
        work.reason,
        cur,
        target,
        work.floor,
        work.ceiling,
        work.explanation,
        values[0],
        values[3],
        work.act,
    )
    # The decision holds the recipe now, and a recipe holds its work: dropping the work's
    # own reference leaves no cycle, so a tick's works and decisions are freed as soon as
    # the decision is dropped instead of piling up for the cyclic GC (its full passes
    # over them were most of decide()'s p95).
    work.explanation = ""
    if work.act:
        in_force = work.in_force
        grown = work.reason in GROWN and target > (cur if cur > in_force else in_force)
        memos[dom.uuid] = progress.issued(work.memo, cur, target, now, grown)
    return decision
