"""decide() alone, replayed: for instruction counts that do not depend on the machine's load.

Records ticks 20-30 of bench/scale.py's 1,000-domain fleet (the settled part; the snapshot,
the controller state and the clock of each), then calls decide() on each recorded tick
REPEAT times. Under cachegrind the difference between REPEAT=2 and REPEAT=0, divided by 20,
is the instructions of one decide():

    for r in 0 2; do valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        .venv/bin/python bench/decide_replay.py $r 2>&1 | grep 'I *refs'; done

(86.2M per decide() before stop 10's changes, 82.9-83.7M after them.) Without
valgrind it prints the replayed decide()'s median wall time.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time

from balloond.backend.simulated import SimulatedHost
from balloond.bench.contenders.balloond import INTERVAL, STALE_AFTER, shipped_policies
from balloond.core.decide import decide
from balloond.core.state import ControllerState
from balloond.daemon import heap
from balloond.model import Snapshot
from balloond.policy.match import matcher_for
from balloond.sim.fleet import generate_fleet

DOMAINS, FIRST, LAST = 1000, 20, 30


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    host = SimulatedHost.from_scenario(generate_fleet("scale", DOMAINS), clock="manual",
                                       epoch=1_700_000_000.0)  # fmt: skip
    policy_for = matcher_for(shipped_policies()).select
    reserve = host.scenario.host.reserve
    state = ControllerState.empty()
    host.advance(INTERVAL)
    heap.settle()
    recorded = []
    for tick in range(LAST):
        reports = host.reports()
        doms = tuple(dataclasses.replace(d, report=reports.get(d.uuid)) for d in host.domains())
        now = host.now()
        snapshot = Snapshot(taken_at=now, host=host.host(), domains=doms)
        if tick >= FIRST:
            recorded.append((snapshot, state, now))
        decision, state = decide(snapshot, policy_for, state, reserve=reserve, holds={},
                                 now=now, stale_after=STALE_AFTER)  # fmt: skip
        for action in decision.actions:
            host.set_target(action.name, action.target)
        del decision
        host.advance(INTERVAL)
    times = []
    for _ in range(repeat):
        for snapshot, before, now in recorded:
            started = time.perf_counter()
            decide(snapshot, policy_for, before, reserve=reserve, holds={}, now=now,
                   stale_after=STALE_AFTER)  # fmt: skip
            times.append(time.perf_counter() - started)
    if times:
        print(f"decide() replayed {len(times)} times at {DOMAINS} domains: "
              f"median {statistics.median(times) * 1000:.1f} ms, min {min(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
