"""Scale figures: the daemon's own tick on the simulated host, and decide() within it, at
100, 1,000 and 10,000 domains; time per tick (median, p95) and process RSS. Each size runs
in its own process so that RSS belongs to that size alone (it includes the simulator's own
guests), with the garbage collector set as the daemon sets it (balloond.daemon.heap).

Two phases per size: the first ticks from boot, when the generated fleet starts above its
demand and most domains move, then the settled fleet the daemon spends its life on (a few
domains move per tick as their workloads change). Both are printed.

    python bench/scale.py            # the table
    python -m balloond.bench.scale --one 1000   # one size, as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from balloond.backend.simulated import SimulatedHost
from balloond.bench.contenders.balloond import INTERVAL, settings_for, shipped_policies
from balloond.daemon import heap
from balloond.daemon.assemble import simulated_daemon
from balloond.model import Decision
from balloond.sim.fleet import generate_fleet
from balloond.units import KiB, MiB

SIZES = (100, 1_000, 10_000)
# (ticks from boot, settled ticks after them) per size.
TICKS = {100: (20, 60), 1_000: (20, 60), 10_000: (8, 12)}


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


class ScaleFleet:
    """The generated `scale` fleet on a manual-clock simulated host, run by the daemon's own
    tick (balloond.daemon.assemble.simulated_daemon) with the shipped policies at the
    daemon's default interval: `tick()` collects (host, domains, agent reports, holds),
    decides and sets targets, as `balloond run` does. Used by the scale figures, the
    behaviour fingerprint and bench/decide_replay.py."""

    def __init__(self, domains: int, epoch: float | None = None) -> None:
        self.host = SimulatedHost.from_scenario(
            generate_fleet("scale", domains), clock="manual", epoch=epoch
        )
        self.daemon = simulated_daemon(
            self.host, settings_for(self.host.scenario), shipped_policies()
        )
        self.host.advance(INTERVAL)

    def tick(self) -> Decision:
        """One daemon tick now; its decision."""
        decision = self.daemon.tick()
        if decision is None:  # a simulated host on a manual clock does not go away
            raise RuntimeError(f"{self.host.uri}: the daemon's tick read nothing")
        return decision

    def advance(self) -> None:
        self.host.advance(INTERVAL)  # the simulated guests' own time is not part of a tick

    def close(self) -> None:
        self.daemon.close()  # and with it the host


def measure(domains: int, ticks: int, boot: int = 0) -> dict[str, Any]:
    """Run `boot` + `ticks` daemon ticks on a fleet of `domains`; the `boot` ticks first,
    measured apart (`boot_*`), then the `ticks` the main figures are taken from. A tick's
    time is the daemon's whole `tick()`; decide() is the law's part of it, as the daemon
    timed it (`Daemon.last_tick`)."""
    fleet = ScaleFleet(domains)
    heap.settle()  # as `balloond run` does once it is built
    tick_times, decide_times, moves = [], [], []
    for _ in range(boot + ticks):
        started = time.perf_counter()
        fleet.tick()
        tick_times.append(time.perf_counter() - started)
        record = fleet.daemon.last_tick
        assert record is not None
        decide_times.append(record.decide)
        moves.append(record.applied)
        fleet.advance()
    fleet.close()
    row: dict[str, Any] = {
        "domains": domains,
        "ticks": ticks,
        "boot_ticks": boot,
        "actions": sum(moves[boot:]),
        "tick_median_ms": statistics.median(tick_times[boot:]) * 1000,
        "tick_p95_ms": _p95(tick_times[boot:]) * 1000,
        "decide_median_ms": statistics.median(decide_times[boot:]) * 1000,
        "decide_p95_ms": _p95(decide_times[boot:]) * 1000,
        "rss_mib": rss_kib() * KiB / MiB,
        "peak_rss_mib": rss_kib("VmHWM") * KiB / MiB,
    }
    if boot:
        row |= {
            "boot_actions": sum(moves[:boot]),
            "boot_tick_median_ms": statistics.median(tick_times[:boot]) * 1000,
            "boot_decide_median_ms": statistics.median(decide_times[:boot]) * 1000,
            "boot_decide_p95_ms": _p95(decide_times[:boot]) * 1000,
        }
    return row


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| domains | decide() median / p95 | full tick median / p95 | moves per tick "
        "| from boot: decide() median / p95, moves per tick | RSS (peak) |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        boot = (
            f"{r['boot_decide_median_ms']:.1f} / {r['boot_decide_p95_ms']:.1f} ms, "
            f"{r['boot_actions'] / r['boot_ticks']:.0f}"
            if r.get("boot_ticks")
            else "-"
        )
        lines.append(
            f"| {r['domains']:,} | {r['decide_median_ms']:.1f} / "
            f"{r['decide_p95_ms']:.1f} ms | {r['tick_median_ms']:.1f} / "
            f"{r['tick_p95_ms']:.1f} ms | {r['actions'] / r['ticks']:.0f} | {boot} "
            f"| {r['rss_mib']:.0f} MiB ({r['peak_rss_mib']:.0f}) |"
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
        boot, ticks = TICKS.get(args.one, (10, 20))
        print(json.dumps(measure(args.one, ticks, boot)))
        return 0
    baseline = rss_kib() * KiB / MiB
    text = table(run_sizes(tuple(int(s) for s in args.sizes.split(","))))
    text += (
        f"\n\nOne process per size, the daemon's own tick every {INTERVAL:g} s of the "
        "simulated host's clock (Daemon.tick: collect host, domains, agent reports and holds "
        "→ decide → set targets, log the decision lines) on a generated fleet; decide() is "
        "the law's part of that tick. The garbage collector is set as the daemon sets it "
        "(balloond/daemon/heap.py). Main columns: the settled fleet, after "
        "the ticks from boot (20 at 100 and 1,000 domains, 8 at 10,000), in which the fleet "
        "starts above its demand and most domains move. RSS includes the simulator's "
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
