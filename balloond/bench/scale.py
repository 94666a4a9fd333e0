"""Scale figures: decide() and a full daemon tick on the simulated host at 100, 1,000 and
10,000 domains; time per tick (median, p95) and process RSS. Each size runs in its own
process so that RSS belongs to that size alone (it includes the simulator's own guests).

    python bench/scale.py            # the table
    python -m balloond.bench.scale --one 1000   # one size, as JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from balloond.backend.simulated import SimulatedHost
from balloond.bench.contenders.balloond import INTERVAL, STALE_AFTER, shipped_policies
from balloond.core.decide import decide
from balloond.core.state import ControllerState
from balloond.model import Snapshot
from balloond.policy.match import matcher_for
from balloond.sim.fleet import generate_fleet

SIZES = (100, 1_000, 10_000)
TICKS = {100: 40, 1_000: 20, 10_000: 8}


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident set (or VmHWM, its peak) in KiB, from /proc."""
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(domains: int, ticks: int) -> dict[str, Any]:
    """Run `ticks` daemon ticks (collect -> decide -> apply) on a fleet of `domains`."""
    host = SimulatedHost.from_scenario(generate_fleet("scale", domains), clock="manual")
    policy_for = matcher_for(shipped_policies()).select  # as the daemon's loop passes it
    reserve = host.scenario.host.reserve
    state = ControllerState.empty()
    host.advance(INTERVAL)
    tick_times, decide_times, actions = [], [], 0
    for _ in range(ticks):
        started = time.perf_counter()
        reports = host.reports()
        doms = tuple(dataclasses.replace(d, report=reports.get(d.uuid)) for d in host.domains())
        now = host.now()
        snapshot = Snapshot(taken_at=now, host=host.host(), domains=doms)
        before_decide = time.perf_counter()
        decision, state = decide(
            snapshot, policy_for, state, reserve=reserve, holds={}, now=now, stale_after=STALE_AFTER
        )
        decide_times.append(time.perf_counter() - before_decide)
        for action in decision.actions:
            host.set_target(action.name, action.target)
            actions += 1
        tick_times.append(time.perf_counter() - started)
        host.advance(INTERVAL)  # the simulated guests' own time is not part of the tick
    host.close()
    return {
        "domains": domains,
        "ticks": ticks,
        "actions": actions,
        "tick_median_ms": statistics.median(tick_times) * 1000,
        "tick_p95_ms": _p95(tick_times) * 1000,
        "decide_median_ms": statistics.median(decide_times) * 1000,
        "decide_p95_ms": _p95(decide_times) * 1000,
        "rss_mib": rss_kib() / 1024,
        "peak_rss_mib": rss_kib("VmHWM") / 1024,
    }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| domains | decide() median / p95 | full tick median / p95 | RSS (peak) |",
        "|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['domains']:,} | {r['decide_median_ms']:.1f} / "
            f"{r['decide_p95_ms']:.1f} ms | {r['tick_median_ms']:.1f} / "
            f"{r['tick_p95_ms']:.1f} ms | {r['rss_mib']:.0f} MiB "
            f"({r['peak_rss_mib']:.0f}) |"
        )
    return "\n".join(lines)


def run_sizes(sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "balloond.bench.scale", "--one", str(size)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--one", type=int, metavar="N", help="measure N domains, print JSON")
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="comma-separated fleet sizes (default: 100,1000,10000)",
    )
    parser.add_argument("--out", metavar="FILE", help="also write the table here (Markdown)")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, TICKS.get(args.one, 10))))
        return 0
    baseline = rss_kib() / 1024
    text = table(run_sizes(tuple(int(s) for s in args.sizes.split(","))))
    text += (
        f"\n\nOne process per size, {INTERVAL:g} s ticks of collect (host, domains, agent "
        "reports) → decide → apply on a generated fleet; RSS includes the simulator's "
        f"guests (this driver process alone: {baseline:.0f} MiB). "
        f"CPU: {os.cpu_count()} cores."
    )
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write("## Scale\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
