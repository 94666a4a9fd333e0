"""Memory promised to guests but not yet taken from the host (qmemman-style accounting).

On a KVM host a balloon's size is a promise, not an allocation: QEMU backs guest pages only
when the guest first touches them, and the host's free memory (MemFree + Buffers + Cached)
still counts the untouched part of every balloon as free. When the guest touches it, host free
drops with no grant at all (the real-VM lab's contention run: the budget shared out fell from
224 MiB to ~100 MiB as two workloads first touched memory they already had, and the heavier
guest's workload was OOM-killed). qmemman counts Xen memory promised to a domain and not yet
taken as used; here the untouched part of a balloon is estimated from `rss`, the QEMU
process's resident set.

`rss` also holds QEMU's own memory (its code, device buffers, under TCG the translated-code
cache: 95-127 MiB per 512 MiB guest in the lab), so `current - rss` alone understates the
untouched part by that overhead, and in the lab hid a 130 MiB grant almost entirely. The
overhead is learned per QEMU process: `rss - current` is at most the overhead (a guest
cannot back more than its balloon), and equals it whenever the guest has touched all of its
balloon, which is what a guest under pressure does. So the largest gap seen while the balloon
stood still is a lower bound that is exact once the guest has been full, and the untouched
part is `current + overhead - rss`. Until a gap is seen the overhead counts as 0: the
estimate is optimistic, never pessimistic, as before this accounting existed.

Hosts that charge the whole balloon at once (Xen, the simulator) report `rss` = `current` or
none, and nothing changes for them.
"""

from __future__ import annotations

from balloond.core.classify import ALIVE
from balloond.core.state import Backing
from balloond.model import DomainSnapshot
from balloond.units import MiB

# An `rss` above maxmem by more than this is garbage, not QEMU overhead (which is tens of MiB).
RSS_SLACK = 1024 * MiB
# A learned overhead is capped: a larger gap is not QEMU's own memory but something that
# inflates `rss` without the guest (transparent huge pages backing 2 MiB for a 4 KiB touch),
# and counting it would withhold memory the host has. TCG's 127 MiB per 512 MiB guest in the
# lab is well inside 192 MiB + maxmem / 8.
OVERHEAD_BASE = 192 * MiB
OVERHEAD_PER_MAXMEM = 8


def _rss(dom: DomainSnapshot) -> int | None:
    """The QEMU process's resident set, or None when missing, <= 0 or above maxmem +
    RSS_SLACK (garbage: a domain with no believable figure is assumed fully backed)."""
    stats = dom.stats
    rss = None if stats is None else stats.rss
    if rss is None or rss <= 0 or rss > max(dom.maxmem, 0) + RSS_SLACK:
        return None
    return rss


def _max_overhead(maxmem: int) -> int:
    return OVERHEAD_BASE + max(maxmem, 0) // OVERHEAD_PER_MAXMEM


def learn(dom: DomainSnapshot, known: Backing | None) -> Backing | None:
    """This tick's knowledge of `dom`'s QEMU overhead, from what was `known` and this sample.

    A gap counts only when the balloon stood still since the previous tick: `current` and
    `rss` are read at slightly different moments, and a guest touching pages it was just
    given, before `current` shows them, would look like overhead. So a first positive gap
    only opens an entry, and the next tick's sample teaches. Guests that never show
    `rss` above their balloon (the simulator's, Xen's) get no entry. Not running: forgotten."""
    if dom.state not in ALIVE:
        return None
    if known is not None and known.domain_id != dom.id:
        known = None  # another QEMU process now runs the domain
    rss = _rss(dom)
    if rss is None:
        return known  # no believable figure this tick: keep what was learned
    current = dom.current
    gap = rss - current
    if known is None:
        return Backing(domain_id=dom.id, overhead=0, current=current) if gap > 0 else None
    if known.current != current:
        return known._replace(current=current)  # the balloon moved: nothing to learn
    if known.overhead < gap <= _max_overhead(dom.maxmem):
        return known._replace(overhead=gap)
    return known


def untouched(dom: DomainSnapshot, known: Backing | None = None) -> int:
    """Bytes of `dom`'s balloon the host does not back yet (0 when unknown or not running):
    `current + overhead - rss`, with the overhead `known` for this QEMU process (0 if none)."""
    if dom.state not in ALIVE:
        return 0
    rss = _rss(dom)
    if rss is None:
        return 0
    overhead = known.overhead if known is not None and known.domain_id == dom.id else 0
    return max(0, dom.current + overhead - rss)
