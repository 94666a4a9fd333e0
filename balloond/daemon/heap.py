"""The daemon's settings for Python's cyclic garbage collector.

A tick allocates a few container objects per domain (works, estimates, memos, decisions)
and, by design, no reference cycles (tests/test_decide_garbage.py holds it to that): they are
all freed by reference counting when the next tick replaces them. With CPython's default
young-generation threshold (700 allocations) a tick at 1,000 domains still ran about nine
young collections that found nothing (measured: 869 collections in 100 ticks, 0 objects
collected), and each one promotes the tick's live objects toward the old generation, whose
full passes over every object the daemon holds made decide()'s p95 twice its median.

So, once the daemon is built: collect once, freeze what startup left (modules, policies,
the backend's bindings: never garbage, never scanned again), and raise the young threshold
so that a tick's own short-lived objects no longer trigger collections. A cycle created
elsewhere (a library, an exception traceback) is still collected, only later: after
YOUNG_THRESHOLD net allocations rather than 700, a bounded amount of memory.
"""

from __future__ import annotations

import gc

# Net container allocations between young collections. A tick at 1,000 domains peaks well
# below this (0 collections in 100 ticks, measured with bench/scale.py's fleet); at 10,000
# domains collections still run, a tenth as often as with the default.
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Apply the daemon's GC settings (call once, after startup, before the first tick)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
