"""The control law: one tick's decision from a snapshot, the policies and the controller state.

Pure: no clock (`now` is passed in), no I/O, no logging, no hypervisor. Steps:

1. Follow the progress of targets issued earlier (stuck detection, `progress.track`).
2. Classify every domain (`classify.classify`): busy, held, disabled and stuck domains are left
   alone; the others are claimants with a want (`want.wanted`: demand plus buffer, or the
   guest's own request, clamped to [floor, ceiling]; demand from `estimate.estimate`).
3. Share the pool by weight (`fair.sharing`): the pool is what claimants hold now plus what
   the host can still give (free - reserve - promises to everyone else - the untouched part
   of every balloon, `backing.untouched`: host free still counts it although the guest owns
   it; QEMU's own share of its rss is learned per process, `backing.learn`). Each claimant's
   fair share is the pool water-filled by weight over the needs, floors first; its share
   adds what is left toward its want. A guest without usable data is not pushed below its
   size. What domains below their fair share are owed beyond what the host can give is a
   debt, paid at once by the domains above their fair share, lowest weight first.
4. Rate limits (`limits.limited`, `limits.stands`): shrink steps (lifted for a debt), grow
   steps, the swap guard (which a debt overrides), the deadband.
5. Grow budget (`budget.grant`): new promises never exceed host free - reserve - promises
   still outstanding - balloon memory the host does not back yet; growth up to the fair
   shares is served first.

Budget invariant (tested): whenever any domain's commitment grows in a tick,
sum over domains of max(0, commitment - current) <= host.free - reserve after the tick, where
a domain's commitment is the larger of its current size and the target in force for it.
With `rss` known the bound is tighter still: the untouched part of the balloons counts too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from balloond.core import explain, progress
from balloond.core.backing import learn, untouched
from balloond.core.budget import Move, commitment, grant
from balloond.core.classify import Claim, Fixed, classify
from balloond.core.explain import sz
from balloond.core.fair import Sharing, sharing
from balloond.core.limits import limited, stands
from balloond.core.state import Backing, ControllerState, DomainMemo
from balloond.model import (
    Decision,
    DomainDecision,
    DomainSnapshot,
    Explanation,
    Hold,
    Reason,
    Snapshot,
)
from balloond.policy.model import Policy

# A move for these reasons starts the grow cooldown (`want.cooled`).
GROWN = (Reason.GROW_PRESSURE, Reason.GROW_DEMAND, Reason.CONTENTION)
# A steady domain keeps these reasons and their texts; any other becomes STEADY once reached.
KEEPS_ITS_TEXT = (Reason.NO_DATA, Reason.SWAP_GUARD, Reason.CONTENTION)


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
    host_free = snapshot.host.free
    # The host itself is short (not merely promised out): idle guests give back at once, and
    # the grow cooldown does not hold anyone up.
    deficit = host_free < reserve
    backing: dict[str, Backing] = {}
    memos: dict[str, DomainMemo] = {}
    unbacked = 0  # promised to guests (inside their balloons) but not yet taken from the host
    fixed_promises = 0  # promised to domains left alone
    bounds: dict[tuple[int, int], tuple[Policy, int, int]] = {}
    first: list[Claim | Fixed] = []
    claims: list[Claim] = []
    for dom in snapshot.domains:
        known = learn(dom, state.backing.get(dom.uuid))
        if known is not None:
            backing[dom.uuid] = known
        unbacked += untouched(dom, known)
        policy = policy_for(dom)
        limits = bounds_for(policy, dom.maxmem, bounds)
        memo, hold = state.memo(dom.uuid), holds.get(dom.uuid)
        item = classify(dom, policy, memo, hold, limits, now, stale_after, stuck_after, not deficit)
        first.append(item)
        memos[dom.uuid] = item.memo  # as if nothing moves
        if isinstance(item, Claim):
            claims.append(item)
        else:
            fixed_promises += item.promise
    # Host free counts untouched balloon memory as free; the guests will take it without any
    # grant, so it is not there to give (qmemman's "promised but not taken").
    room = host_free - unbacked - reserve
    spare = room - fixed_promises - sum(c.promise for c in claims)
    pool = room - fixed_promises + sum(c.dom.current for c in claims)
    places = iter(sharing(claims, pool, spare))  # one per claim, in order
    decided: list[DomainDecision | Move] = []
    for item in first:
        if isinstance(item, Fixed):
            decided.append(item.decision)
        else:
            decided.append(proposal(item, next(places), deficit))
    moves, budget = grant([d for d in decided if isinstance(d, Move)], spare)
    granted = iter(moves)  # one per move, in order
    decisions = tuple(decision_of(next(granted)) if isinstance(d, Move) else d for d in decided)
    for move in moves:
        if move.act:
            memos[move.claim.dom.uuid] = issued(move, now)
    decision = Decision(
        taken_at=now,
        domains=decisions,
        host_free=host_free,
        reserve=reserve,
        budget=max(0, budget),
        notes=tick_notes(host_free, reserve, unbacked, spare, claims, pool),
    )
    return decision, ControllerState.of(memos, backing)


def bounds_for(
    policy: Policy, maxmem: int, known: dict[tuple[int, int], tuple[Policy, int, int]]
) -> tuple[int, int]:
    """(floor, ceiling) of `policy` for `maxmem`, resolved once per policy and maxmem in a
    tick (`known`; a fleet has few of each)."""
    key = (id(policy), maxmem)
    found = known.get(key)
    if found is None or found[0] is not policy:
        size = max(maxmem, 0)
        found = known[key] = (policy, policy.floor_for(size), policy.ceiling_for(size))
    return found[1], found[2]


def proposal(claim: Claim, place: Sharing, deficit: bool) -> DomainDecision | Move:
    """Steps 3 and 4 for one claimant given its `place` in the pool (share, fair share, what
    it pays toward others' fair shares): the decision of a claimant whose target in force
    stands, else its move (which step 5 may still cut)."""
    cur, want = claim.dom.current, claim.want
    share, fair, pays = place
    reason = want.reason
    why: str | Explanation = ""
    if pays or share < want.size:
        reason = Reason.CONTENTION
        why = Explanation(explain.contention, (share, fair, want.size, claim.policy.weight))
    elif reason is Reason.NO_DATA:
        why = Explanation(explain.no_data, (cur, claim.est.why_no_data))
    target, limit, guarded = limited(claim, share, share < want.size, deficit, pays)
    if guarded:
        reason = Reason.SWAP_GUARD
        why = Explanation(explain.swap_guard, (cur, claim.est.swap_in_rate, pays))
    retried = claim.retry and (target != cur or claim.in_force != cur)
    if not retried and stands(claim, target, fair):
        return steady(claim, reason, why, target, fair)
    if pays and target < cur and not guarded:
        why = Explanation(explain.paying, (share, fair, pays, claim.policy.weight))
    if reason is Reason.SWAP_GUARD:
        return Move(claim, target=target, reason=reason, why=why, fair=fair)
    facts = (claim, target, reason, why, limit, retried)
    if reason is Reason.NO_DATA:  # only the policy range moves it
        reason = Reason.FLOOR if cur < claim.floor else Reason.CEILING
    why = Explanation(explain.moved, facts)
    return Move(claim, target=target, reason=reason, why=why, fair=fair)


def steady(
    claim: Claim, reason: Reason, why: str | Explanation, computed: int, fair: int
) -> DomainDecision:
    """The decision of a claimant whose target in force stands (`computed` is where the law
    would have moved it). Still on its way to a target issued earlier: that target stands,
    and so does why."""
    if reason not in KEEPS_ITS_TEXT:
        if progress.reached(claim.in_force, claim.dom.current):
            why = Explanation(explain.steady, (claim, reason, computed))
            reason = Reason.STEADY
        else:
            why = Explanation(explain.moving, (claim, reason))
    return _decision(claim, reason, claim.in_force, why, act=False, fair=fair)


def decision_of(move: Move) -> DomainDecision:
    return _decision(move.claim, move.reason, move.target, move.why, move.act, move.fair)


def _decision(
    claim: Claim, reason: Reason, target: int, why: str | Explanation, act: bool, fair: int
) -> DomainDecision:
    dom = claim.dom
    return DomainDecision(
        name=dom.name,
        uuid=dom.uuid,
        policy=claim.policy.name,
        reason=reason,
        current=dom.current,
        target=target,
        floor=claim.floor,
        ceiling=claim.ceiling,
        why=why,
        demand=claim.est.demand,
        pressure=claim.est.pressure,
        act=act,
        fair_share=fair,
    )


def issued(move: Move, now: float) -> DomainMemo:
    """The memo of a domain whose move is applied: its target recorded, and the grow cooldown
    started by a grow for pressure, demand or contention beyond its commitment."""
    claim = move.claim
    grown = move.reason in GROWN and move.target > commitment(claim)
    return progress.issued(claim.memo, claim.dom.current, move.target, now, grown)


def tick_notes(
    host_free: int, reserve: int, unbacked: int, spare: int, claims: list[Claim], pool: int
) -> tuple[str, ...]:
    """What the operator should know about the host this tick."""
    notes: list[str] = []
    if unbacked > 0:
        notes.append(
            f"{sz(unbacked)} inside guests' balloons is not yet backed by the host "
            "(balloon + QEMU overhead - QEMU rss): counted as taken, not free"
        )
    if host_free < reserve:
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
    floors = sum(c.want.low for c in claims)
    if floors > pool and claims:
        notes.append(f"floors need {sz(floors)} but only {sz(max(pool, 0))} is available")
    return tuple(notes)
