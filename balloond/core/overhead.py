"""The balloon the guest never sees: balloon size - MemTotal, learned per guest.

A guest's MemTotal is smaller than its balloon by the kernel image, struct pages and firmware
reservations (measured in the lab: ~50 MiB, so a 256 MiB balloon gives a 206 MiB MemTotal).
Demand is in the guest's terms, targets are balloon sizes: without this overhead a
demand-sized target leaves the guest nothing to spare, so it is added to every want.

It is a per-guest constant that only looks different while the balloon moves (statistics
lag the balloon by up to a stats period): a gap seen then is a reading from before the balloon
grew, and counting it would grow the guest again on its own growth (the lab saw 20-45 MiB
instead of 54 while a guest grew, and the lower target cancelled the grow in flight). So a gap
counts at all only when plausible (`observed_overhead`), is learned only from a settled
balloon (`settled`), and the learned value is used meanwhile (`overhead_for`).
"""

from __future__ import annotations

from balloond.core.progress import reached
from balloond.core.state import DomainMemo
from balloond.units import MiB

# At most this share of the balloon is taken as invisible to the guest, and at most
# OVERHEAD_BASE + maxmem x OVERHEAD_PER_MAXMEM (kernel and firmware reservations, plus struct
# pages: 64 bytes per 4 KiB page of maxmem, doubled for margin).
MAX_OVERHEAD = 0.25
OVERHEAD_BASE = 64 * MiB
OVERHEAD_PER_MAXMEM = 1 / 32


def observed_overhead(current: int, visible: int, maxmem: int) -> int:
    """This tick's plausible balloon - MemTotal (0: none). A gap beyond MAX_OVERHEAD of the
    balloon is a reading from before a grow and is ignored; one beyond what a kernel
    plausibly reserves is capped."""
    gap = current - visible
    if not 0 < gap <= current * MAX_OVERHEAD:
        return 0
    return min(gap, OVERHEAD_BASE + int(maxmem * OVERHEAD_PER_MAXMEM))


def settled(memo: DomainMemo, current: int, stats_at: float) -> bool:
    """The balloon is at rest (seen at this size last tick, its target in force reached) and
    the statistics were sampled after it came to rest: only then is current - MemTotal the
    guest's reservation, both read of the same balloon."""
    since = memo.current_since
    return (
        memo.seen_current == current
        and since is not None
        and stats_at > since
        and (memo.target is None or reached(memo.target, current))
    )


def overhead_for(
    observed: int, memo: DomainMemo, current: int, stats_at: float
) -> tuple[int, int | None, int | None]:
    """(used, learned, seen): the overhead to add to this tick's want, the one learned from a
    settled balloon (this tick or earlier: the memo's `overhead`), and the largest plausible
    gap seen so far (the memo's `overhead_seen`). `observed` is `observed_overhead` of this
    tick's reading (0: none). Before one is learned, the largest gap seen is used: a larger
    target is the safe error."""
    learned = memo.overhead
    if observed > 0 and observed != learned and settled(memo, current, stats_at):
        learned = observed  # a new gap, read of a balloon at rest
    seen = max(observed, memo.overhead_seen or 0) or None
    used = learned if learned is not None else (seen or 0)
    return used, learned, seen
