"""Figures for the real daemon loop (balloond.daemon.loop.Daemon.tick, not a re-creation):
a full tick (collect, reports, holds, decide, act, export, state file) on a simulated fleet,
the control socket's `list` answer, and the process RSS. Printed, never asserted.

    .venv/bin/python bench/daemon_bench.py [--domains 1000] [--ticks 30]
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import tempfile
import time
from pathlib import Path

from balloond.backend.simulated import SimulatedHost
from balloond.daemon import heap
from balloond.daemon.commands import handlers
from balloond.daemon.control import ControlClient, ControlServer
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.daemon.reload import PolicyWatcher
from balloond.daemon.statefile import StateFile
from balloond.policy.model import Amount
from balloond.sim.fleet import generate_fleet
from balloond.telemetry import Telemetry
from balloond.units import MiB

INTERVAL = 5.0
POLICIES = Path(__file__).resolve().parent.parent / "policies"


def rss_mib() -> float:
    """Resident set size now (not the peak), from /proc."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / MiB


def measure(domains: int, ticks: int, state_dir: Path) -> dict[str, float]:
    host = SimulatedHost.from_scenario(generate_fleet("daemon-bench", domains, seed=7))
    telemetry = Telemetry()
    policies = PolicyWatcher(POLICIES, telemetry)
    policies.load_initial()
    daemon = Daemon(
        lambda: host,
        LoopSettings(interval=INTERVAL, reserve=Amount(size=host.scenario.host.reserve)),
        policies,
        uri=host.uri,
        clock=host.now,
        telemetry=telemetry,
        state_file=StateFile(state_dir),
    )
    heap.settle()  # as `balloond run` does before its first tick
    times = []
    for _ in range(ticks):
        host.advance(INTERVAL)  # the simulated guests' own time is not part of the tick
        started = time.perf_counter()
        daemon.tick()
        times.append(time.perf_counter() - started)
    server = ControlServer(state_dir / "control.sock", handlers(daemon, dict))
    try:
        client = ControlClient(server.path)
        list_times = []
        for _ in range(5):
            started = time.perf_counter()
            rows = client.call("list")["rows"]
            list_times.append(time.perf_counter() - started)
        assert len(rows) == domains
    finally:
        server.close()
    adjustments = sum(daemon.telemetry().adjustments.values())
    daemon.close()
    times.sort()
    return {
        "domains": domains,
        "tick_median_ms": statistics.median(times) * 1000,
        "tick_p95_ms": times[int(0.95 * (len(times) - 1))] * 1000,
        "list_median_ms": statistics.median(list_times) * 1000,
        "adjustments": adjustments,
        "rss_mib": rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--ticks", type=int, default=30)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # 1,000 decision lines a tick measure the terminal
    print(
        f"balloond daemon tick (real Daemon.tick, shipped policies), RSS at start "
        f"{rss_mib():.1f} MiB"
    )
    print(
        "| domains | tick median | tick p95 | balloonctl list over the socket | "
        "adjustments | RSS after |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for domains in args.domains:
        with tempfile.TemporaryDirectory() as scratch:
            figures = measure(domains, args.ticks, Path(scratch))
        print(
            f"| {domains} | {figures['tick_median_ms']:.1f} ms | {figures['tick_p95_ms']:.1f} ms"
            f" | {figures['list_median_ms']:.1f} ms | {figures['adjustments']:.0f} | "
            f"{figures['rss_mib']:.1f} MiB |"
        )


if __name__ == "__main__":
    main()
