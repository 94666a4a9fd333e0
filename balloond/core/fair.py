"""Step 3 of a tick: what weight promises, and how a debt to it is paid.

The promise (docs/policies.md): when the host cannot cover every domain's need, each domain is
entitled to its *fair share*: the pool water-filled by weight over the domains' needs above
their floors (`share.water_fill`: nobody gets more than it needs; what one does not need goes
to the others by weight). A domain's *share* adds what is left of the pool, poured by weight
toward its want (its buffer, and the boost of a stalled guest): headroom comes only after
every need. When the pool covers every want, each share is the want.

A domain below its fair share is owed the difference. What the host cannot give now (its
`spare` above the reserve and every promise) is a *debt*, paid at once by the domains above
their fair share, lowest weight first, each down to its fair share at most (so never below
its floor; headroom is taken before anyone's need):
the gentle shrink step is for idle reclaim, not for paying a debt (`limits.limited`). The
grow budget (step 5, `budget.grant`) then serves every domain up to its fair share before
any grows beyond it. Memory a shrink frees is granted only once the host reports it free,
so a debt is paid over two ticks and the reserve and the budget invariant hold throughout.
"""

from __future__ import annotations

from typing import NamedTuple

from balloond.core.budget import commitment
from balloond.core.classify import Claim
from balloond.core.share import water_fill


class Sharing(NamedTuple):
    """One claimant's place in the pool this tick."""

    share: int  # its fair share and what is left of the pool toward its want
    fair: int  # its fair share
    pays: int  # what it gives at once toward the fair shares of others


def fair_shares(claims: list[Claim], pool: int) -> list[int]:
    """Each claimant's fair share: the pool water-filled by weight over the needs, floors
    first."""
    return water_fill(
        [c.want.low for c in claims],
        [c.want.need for c in claims],
        [c.policy.weight for c in claims],
        pool,
    )


def shares(claims: list[Claim], fair: list[int], pool: int) -> list[int]:
    """Each claimant's share: its fair share, and what the fair shares leave of the pool
    poured by weight toward its want."""
    wants = [max(c.want.size, f) for c, f in zip(claims, fair, strict=True)]
    return water_fill(fair, wants, [c.policy.weight for c in claims], pool)


def debts(claims: list[Claim], fair: list[int], spare: int) -> list[int]:
    """What each claimant pays at once: the memory owed to claimants below their fair share
    beyond what the host can give, taken from the claimants above their fair share, lowest
    weight first, each down to its fair share at most."""
    owed = sum(max(0, f - commitment(c)) for c, f in zip(claims, fair, strict=True))
    debt = owed - max(0, spare)
    if debt <= 0:
        return [0] * len(claims)
    pays = [0] * len(claims)
    givers = [i for i, c in enumerate(claims) if c.dom.current > fair[i]]
    for i in sorted(givers, key=lambda i: claims[i].policy.weight):
        if debt <= 0:
            break
        pays[i] = min(claims[i].dom.current - fair[i], debt)
        debt -= pays[i]
    return pays


def sharing(claims: list[Claim], pool: int, spare: int) -> list[Sharing]:
    """Step 3 for every claimant, in order."""
    fair = fair_shares(claims, pool)
    share = shares(claims, fair, pool)
    pays = debts(claims, fair, spare)
    return [Sharing(share=s, fair=f, pays=p) for s, f, p in zip(share, fair, pays, strict=True)]
