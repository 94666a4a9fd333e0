"""Memory promised to guests but not yet taken from the host (qmemman-style accounting).

On a KVM host a balloon's size is a promise, not an allocation: QEMU backs guest pages only
when the guest first touches them, and the host's free memory (MemFree + Buffers + Cached)
still counts the untouched part of every balloon as free. When the guest touches it, host free
drops with no grant at all (the real-VM lab's contention run: the budget shared out fell from
224 MiB to ~100 MiB as two workloads first touched memory they already had, and the heavier
guest's workload was OOM-killed). qmemman counts Xen memory promised to a domain and not yet
taken as used; here the untouched part of a balloon is `current - rss`, with `rss` the QEMU
process's resident set.

QEMU's own overhead (its code, device buffers, the KVM structures) is inside `rss` too, so
`current - rss` understates what is untouched by that overhead: the correction is slightly
optimistic, never pessimistic. Hosts that charge the whole balloon at once (Xen, the
simulator) report `rss` = `current` or none, and nothing changes for them.
"""

from __future__ import annotations

from collections.abc import Iterable

from balloond.core.classify import ALIVE
from balloond.model import DomainSnapshot

# An `rss` above maxmem by more than this is garbage, not QEMU overhead (which is tens of MiB).
RSS_SLACK = 1024 * 1024 * 1024


def untouched(dom: DomainSnapshot) -> int:
    """Bytes of `dom`'s balloon the host does not back yet (0 when unknown or not running).

    An `rss` that is missing, <= 0 or above maxmem + RSS_SLACK is unknown: a domain with no
    believable figure is assumed fully backed, as before this accounting existed."""
    stats = dom.stats
    if stats is None or dom.state not in ALIVE:
        return 0
    rss = stats.rss
    if rss is None or rss <= 0 or rss > max(dom.maxmem, 0) + RSS_SLACK:
        return 0
    return max(0, dom.current - rss)


def untouched_total(domains: Iterable[DomainSnapshot]) -> int:
    """What host free counts as free although guests already own it."""
    return sum(untouched(d) for d in domains)
