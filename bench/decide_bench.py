"""Time decide() on synthetic fleets of 100, 1,000 and 10,000 domains; print median and p95.

Usage: .venv/bin/python bench/decide_bench.py [--sizes 100,1000,10000] [--ticks 30]

Each fleet mixes what a real host shows: guests with agent reports (some under pressure, some
swapping), guests with balloon statistics only, garbage statistics, paused and migrating
domains, holds, and a host tight enough that contention sharing runs. The controller state is
carried from tick to tick, as the daemon does, and guests move halfway to their targets between
ticks so that progress tracking and promises are exercised too. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace

from balloond.core import ControllerState, decide
from balloond.model import (
    DomainSnapshot,
    DomainState,
    GuestReport,
    Hold,
    HostSnapshot,
    JobKind,
    MemoryStats,
    Snapshot,
)
from balloond.policy.model import Policy
from balloond.units import PAGE, GiB, MiB

POLICIES = (
    Policy(name="default"),
    Policy(name="web", weight=2000),
    Policy(name="batch", weight=500),
)


def _domain(i: int, rng: random.Random, now: float) -> DomainSnapshot:
    maxmem = rng.choice((1, 2, 4, 8)) * GiB
    current = rng.randint(maxmem // 4, maxmem)
    used = rng.randint(current // 10, current)
    kind = i % 10
    stats = MemoryStats(
        total=current,
        available=current - used,
        swap_in=i * PAGE,
        major_faults=i,
        last_update=now - 1,
    )
    report = None
    if kind < 5:
        report = GuestReport(
            seq=i,
            received_at=now - 2,
            demand=used,
            psi_some=rng.choice((0.0, 0.0, 0.001, 0.04)),
            swap_in_rate=rng.choice((0.0, 0.0, 65536.0)),
        )
    if kind == 5:
        stats = MemoryStats(total=-5, available=maxmem * 3)  # garbage
    state = DomainState.PAUSED if kind == 6 and i % 20 == 6 else DomainState.RUNNING
    job = JobKind.MIGRATION if i % 97 == 0 else None
    return DomainSnapshot(
        name=f"vm{i}",
        uuid=f"uuid-{i}",
        current=current,
        maxmem=maxmem,
        state=state,
        job=job,
        stats=stats,
        report=report,
    )


def _fleet(n: int, seed: int, now: float) -> tuple[Snapshot, dict[str, Hold]]:
    rng = random.Random(seed)
    domains = tuple(_domain(i, rng, now) for i in range(n))
    used = sum(d.current for d in domains)
    host = HostSnapshot(total=used + n * 256 * MiB, free=n * 200 * MiB)
    holds = {
        f"uuid-{i}": Hold(f"uuid-{i}", "balloonctl balloon", "bench", target=GiB)
        for i in range(0, n, 50)
    }
    return Snapshot(taken_at=now, host=host, domains=domains), holds


def _advance(snapshot: Snapshot, targets: dict[str, int], now: float) -> Snapshot:
    """Guests move halfway toward their targets; the clock moves 10 s, and statistics and
    reports are as fresh as at the start (without that, every domain had gone stale, "no
    data", by the third tick and the figures timed little more than that path)."""
    domains = tuple(_moved(d, targets.get(d.uuid), now) for d in snapshot.domains)
    return replace(snapshot, taken_at=now, domains=domains)


def _moved(dom: DomainSnapshot, target: int | None, now: float) -> DomainSnapshot:
    current = dom.current if target is None else dom.current + (target - dom.current) // 2
    stats, report = dom.stats, dom.report
    if stats is not None and stats.last_update is not None:
        stats = replace(stats, last_update=now - 1)
    if report is not None:
        report = replace(report, received_at=now - 2)
    return replace(dom, current=current, stats=stats, report=report)


def run(n: int, ticks: int) -> list[float]:
    now = 1_700_000_000.0
    snapshot, holds = _fleet(n, seed=n, now=now)
    state = ControllerState.empty()
    timings = []
    for _ in range(ticks):
        start = time.perf_counter()
        decision, state = decide(
            snapshot,
            lambda d: POLICIES[hash(d.uuid) % 3],
            state,
            reserve=n * 64 * MiB,
            holds=holds,
            now=now,
        )
        timings.append(time.perf_counter() - start)
        now += 10.0
        snapshot = _advance(snapshot, {a.uuid: a.target for a in decision.actions}, now)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--ticks", type=int, default=30)
    args = parser.parse_args()
    print(f"{'domains':>8} {'median ms':>10} {'p95 ms':>8} {'per domain us':>14}")
    for n in (int(s) for s in args.sizes.split(",")):
        ticks = max(5, args.ticks if n <= 1000 else args.ticks // 3)
        timings = sorted(run(n, ticks))
        median = statistics.median(timings)
        p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
        print(f"{n:>8} {median * 1e3:>10.2f} {p95 * 1e3:>8.2f} {median / n * 1e6:>14.1f}")


if __name__ == "__main__":
    main()
