"""Sharing scarce memory by weight (water-filling), never below a floor.

Each claimant has a `floor` it always gets, a `want` (>= floor) it would like, and a `weight`.
When the pool covers every want, everyone gets its want. Otherwise floors are paid first and
the rest is poured in proportion to weight: claimant i gets floor_i + min(want_i - floor_i,
level x weight_i), with one `level` chosen so the pool is used exactly. Claimants that need
little are filled completely and what they leave flows to the others (unlike a plain
proportional split, as in Proxmox's `min + extra x shares / sum`, which strands memory with
guests that do not need it).
"""

from __future__ import annotations

from collections.abc import Sequence


def water_fill(
    floors: Sequence[int], wants: Sequence[int], weights: Sequence[int], pool: int
) -> list[int]:
    """Allocations, one per claimant, with sum <= max(pool, sum(floors)).

    Requires len(floors) == len(wants) == len(weights) and want >= floor for each claimant.
    A weight <= 0 gets its floor, plus only what weighted claimants leave over.
    """
    total_want = sum(wants)
    if total_want <= pool:
        return list(wants)
    total_floor = sum(floors)
    if total_floor >= pool:
        return list(floors)
    remaining = pool - total_floor
    order = sorted(
        (i for i in range(len(wants)) if weights[i] > 0),
        key=lambda i: (wants[i] - floors[i]) / weights[i],
    )
    weight_left = sum(weights[i] for i in order)
    alloc = list(floors)
    cut = len(order)
    for position, i in enumerate(order):
        gap = wants[i] - floors[i]
        # Filled completely when its gap fits within its weighted share of what is left.
        if gap * weight_left > remaining * weights[i]:
            cut = position
            break
        alloc[i] = wants[i]
        remaining -= gap
        weight_left -= weights[i]
    for i in order[cut:]:
        alloc[i] = floors[i] + remaining * weights[i] // weight_left
    if cut == len(order) and remaining > 0:
        # Every weighted claimant is full: claimants of weight 0 share the leftovers evenly.
        idle = [i for i in range(len(wants)) if weights[i] <= 0]
        extra = (
            water_fill(
                [0] * len(idle), [wants[i] - floors[i] for i in idle], [1] * len(idle), remaining
            )
            if idle
            else []
        )
        for i, more in zip(idle, extra, strict=True):
            alloc[i] += more
    return alloc
