"""Step 4 of a tick: how far a claimant may move toward its share this tick, and whether the
move is worth making.

- Shrinks are gentle: at most `max_shrink_step` per tick, except while the host is below its
  reserve (idle guests give back at once; guests cut by contention at DEFICIT_STEP_FACTOR
  times their step), and except for what a domain pays toward others' fair shares
  (`balloond.core.fair`), given at once. Never above the ceiling.
- Grows go at once unless the policy sets `max_grow_step`; a domain below its floor still
  rises to it at once.
- The swap guard: a guest that swaps in is not shrunk below its size, but for what it pays.
- The deadband: a move within the deadband of the target in force is not made, nor one within
  the deadband of the balloon's size that would lower a grow in flight; but a claimant below
  its fair share always moves up toward it (`budget.owed`).
"""

from __future__ import annotations

from balloond.core.budget import owed
from balloond.core.classify import Claim
from balloond.policy.model import Amount, Policy

# In a host deficit, claimants cut by contention shrink at this multiple of their usual step.
DEFICIT_STEP_FACTOR = 2


def shrink_step(policy: Policy, current: int, deficit: bool, contention: bool) -> int:
    """How much a claimant may shrink this tick."""
    step = policy.max_shrink_step.resolve(current)
    if deficit and contention:
        return step * DEFICIT_STEP_FACTOR
    if deficit:
        return current  # idle guests give back at once while the host is short
    return step


def limited(
    claim: Claim, goal: int, contention: bool, deficit: bool, pays: int = 0
) -> tuple[int, Amount | None, bool]:
    """(target, limit, guarded): where the claimant may go this tick on its way from its
    size to `goal` (its share; `contention`: less than it wants), the policy step that held
    it back if one did, and whether the swap guard kept it at its size. What it `pays`
    toward others' fair shares is given at once, below its share if need be (its headroom
    goes before anyone's need), swap guard or not: the gentle step is for idle reclaim, not
    for paying a debt."""
    cur, policy = claim.dom.current, claim.policy
    if pays:
        goal = min(goal, cur - pays)
    if goal < cur:
        step = max(shrink_step(policy, cur, deficit, contention), pays)
        new = min(max(cur - step, goal), claim.ceiling)
        limit = policy.max_shrink_step if new > goal else None
        kept = min(cur - pays, claim.ceiling)
        if claim.guard and new < kept:
            return kept, limit, True
        return new, limit, False
    grow = policy.max_grow_step
    if goal > cur and grow is not None:
        new = max(min(goal, cur + grow.resolve(cur)), min(goal, claim.floor))
        return new, grow if new < goal else None, False
    return goal, None, False


def within_deadband(new: int, in_force: int, current: int, band: int) -> bool:
    """Too small a move to make: within the deadband of the target in force, or within the
    deadband of the balloon's size and lowering the target in force without extending a
    shrink (that would cancel a grow in flight for nothing: the lab's "shrink 286 MiB →
    286 MiB (-820 B)"). Raising the target in force is never held back by the second test:
    it only stops a shrink or extends a grow, and the first test still applies to it."""
    if abs(new - in_force) < band:
        return True
    return new < in_force and abs(new - current) < band and not in_force < current


def stands(claim: Claim, new: int, fair: int) -> bool:
    """The target in force stands: the move to `new` is no move, or too small to make (a
    domain outside its range always moves back into it, and one below its `fair` share up
    toward it)."""
    cur, in_force = claim.dom.current, claim.in_force
    if new == in_force:
        return True
    if not claim.floor <= cur <= claim.ceiling or owed(claim, fair, new):
        return False
    return within_deadband(new, in_force, cur, claim.policy.deadband.resolve(cur))
