"""decide() alone, replayed: for instruction counts that do not depend on the machine's load.

Records ticks 20-30 of bench/scale.py's 1,000-domain fleet, run by the daemon's own tick (the
settled part; the snapshot, holds and controller state each tick decided on), then calls
the daemon's decide() on each recorded tick REPEAT times. With --from-boot it records ticks
0-10 instead: the fleet coming up from boot, where about 450 of the 1,000 domains move every
tick (the settled window has few movers).
Under cachegrind the difference between REPEAT=2 and REPEAT=0, divided by 20, is the
instructions of one decide():

    for r in 0 2; do valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        .venv/bin/python bench/decide_replay.py $r [--from-boot] 2>&1 | grep 'I *refs'; done

Run it with PYTHONHASHSEED=0 (the hash seed moves the count by about 1 %), on the trees to
compare (a `git worktree` of the old one, PYTHONPATH pointing at it); docs/bench.md quotes
the counts of the changes that were measured so. Without valgrind it prints the replayed
decide()'s median wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time

from balloond.bench.scale import ScaleFleet
from balloond.daemon import heap

DOMAINS = 1000
SETTLED, FROM_BOOT = (20, 30), (0, 10)  # the recorded ticks, first to last (exclusive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "repeat",
        nargs="?",
        type=int,
        default=5,
        help="calls of decide() per recorded tick (default 5)",
    )
    parser.add_argument(
        "--from-boot",
        action="store_true",
        help=f"record ticks {FROM_BOOT[0]}-{FROM_BOOT[1]} (from boot) instead "
        f"of the settled {SETTLED[0]}-{SETTLED[1]}",
    )
    args = parser.parse_args()
    repeat = args.repeat
    first, last = FROM_BOOT if args.from_boot else SETTLED
    fleet = ScaleFleet(DOMAINS, epoch=1_700_000_000.0)
    heap.settle()
    daemon = fleet.daemon
    recorded = []
    for tick in range(last):
        before = daemon.controller_state()
        fleet.tick()
        snapshot = daemon.last_snapshot()
        if tick >= first and snapshot is not None:
            recorded.append((snapshot, daemon.holds(), before))
        fleet.advance()
    times = []
    for _ in range(repeat):
        for snapshot, holds, before in recorded:
            started = time.perf_counter()
            daemon.decide(snapshot, holds, before)  # the law as the daemon's tick calls it
            times.append(time.perf_counter() - started)
    if times:
        print(
            f"decide() replayed {len(times)} times at {DOMAINS} domains: "
            f"median {statistics.median(times) * 1000:.1f} ms, min {min(times) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
