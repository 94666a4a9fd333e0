"""Step 5 of a tick: the grow budget. New promises never exceed what the host can give now.

Every claimant that moves is a `Move`. A grower asks for its target beyond what it has or was
promised already (its commitment); what shrinkers give back below their commitments adds to
the budget, and the budget is what the host has above its reserve, less every promise still
outstanding and every untouched balloon (`decide`'s `spare`). Memory a shrink frees is not
counted until the host reports it free: shrinks and grows are issued together, shrinks first,
but a grow never relies on a shrink having happened. When the asks exceed the budget, it is
shared by weight (`share.water_fill`), the way up to each grower's fair share (at least its
floor) first; a grower left with less than its deadband waits at the target in force, unless
it is below its fair share (`owed`: the deadband does not hold back what weight promises).
"""

from __future__ import annotations

from typing import NamedTuple

from balloond.core import explain
from balloond.core.classify import Claim
from balloond.core.share import water_fill
from balloond.model import Explanation, Reason
from balloond.units import MiB

# A move up toward a claimant's fair share is made from this size on, deadband or not: a
# balloon within 1 MiB of its target has reached it (`progress.reached`).
OWED_MIN = MiB


class Move(NamedTuple):
    """A claimant's move this tick, as the rate limits left it."""

    claim: Claim
    target: int
    reason: Reason
    why: str | Explanation
    act: bool = True  # False: cut to nothing, it waits at the target in force
    fair: int = 0  # its fair share (step 3): growth up to it is granted first


def commitment(claim: Claim) -> int:
    """What the domain has or was promised already: the larger of its size and the target in
    force."""
    return max(claim.dom.current, claim.in_force)


def owed(claim: Claim, fair: int, new: int) -> bool:
    """The move to `new` raises the target in force of a claimant that has or was promised
    less than its `fair` share, by OWED_MIN at least. The deadband does not hold such a move
    back: it saves balloon work on moves the law may take back, and under contention it left
    every light guest a few MiB below its share for minutes (docs/bench.md); what weight
    promises is kept to the MiB (docs/policies.md)."""
    return commitment(claim) < fair and new - claim.in_force >= OWED_MIN


def grant(moves: list[Move], spare: int) -> tuple[list[Move], int]:
    """The moves with growth cut to the budget `spare` (plus what shrinks give back below
    their commitments), and the budget left over."""
    growing = [i for i, move in enumerate(moves) if move.target > commitment(move.claim)]
    freed = sum(
        commitment(move.claim) - max(move.target, move.claim.dom.current)
        for move in moves
        if move.target <= commitment(move.claim)
    )
    growers = [moves[i] for i in growing]
    asks = [move.target - commitment(move.claim) for move in growers]
    room = spare + freed
    if sum(asks) <= room:
        return moves, room - sum(asks)
    room = max(0, room)
    weights = [move.claim.policy.weight for move in growers]
    # Growth up to each grower's fair share (at least its floor) first, by weight; the rest
    # after, by weight.
    to_fair = [
        min(ask, max(0, max(move.claim.floor, move.fair) - commitment(move.claim)))
        for move, ask in zip(growers, asks, strict=True)
    ]
    first = water_fill([0] * len(growers), to_fair, weights, room)
    beyond = [ask - got for ask, got in zip(asks, first, strict=True)]
    rest = water_fill([0] * len(growers), beyond, weights, room - sum(first))
    cut = list(moves)
    for i, ask, to_fair_part, rest_part in zip(growing, asks, first, rest, strict=True):
        cut[i] = cut_growth(moves[i], ask, to_fair_part + rest_part)
    return cut, room - sum(first) - sum(rest)


def cut_growth(move: Move, ask: int, granted: int) -> Move:
    """A grower given `granted` of the `ask` beyond its commitment."""
    if granted >= ask:
        return move
    claim = move.claim
    cur = claim.dom.current
    small = granted < claim.policy.deadband.resolve(cur)
    if granted <= 0 or (small and not owed(claim, move.fair, commitment(claim) + granted)):
        why = Explanation(explain.waiting, (cur, move.target))
        return move._replace(target=claim.in_force, reason=Reason.CONTENTION, why=why, act=False)
    target = commitment(claim) + granted
    why = Explanation(explain.partly_granted, (cur, target, granted, ask))
    return move._replace(target=target, reason=Reason.CONTENTION, why=why)
