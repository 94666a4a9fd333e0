"""How long one Prometheus scrape of balloond takes for a host with N domains.

    .venv/bin/python bench/scrape_bench.py [--domains 1000] [--runs 50]

Builds a daemon view over a simulated fleet (a few ticks of the real decision core), then
times (a) rendering the exposition in-process (collector + text format), and (b) full HTTP
scrapes of `balloond.metrics.serve` running in another process (as the daemon would, with
Prometheus as the client), in the text format, OpenMetrics and gzip. Prints median and p95;
the issue's goal is a 1,000-domain scrape under 100 ms. Figures, not a pass/fail test: the
load average and CPU times are printed too, since other work on a shared machine inflates
wall-clock times (CPU time is what the scrape itself costs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

from balloond.metrics import render
from balloond.metrics.demo import simulated_view
from balloond.units import KiB

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)  # what Prometheus 2.42 sends


def timed(
    action: Callable[[], object], runs: int, clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    action()  # warm-up: first-call imports and caches are not what a scrape costs
    samples = []
    for _ in range(runs):
        started = clock()
        action()
        samples.append(clock() - started)
    return samples


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(label: str, samples: list[float]) -> None:
    print(
        f"{label:<40} median {statistics.median(samples) * 1000:7.2f} ms"
        f"   p95 {p95(samples) * 1000:7.2f} ms   (n={len(samples)})"
    )


def http_scrapes(uri: str, runs: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "balloond.metrics.demo", "--uri", uri, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "serving ... on http://127.0.0.1:PORT/metrics; ..."
        url = next(word for word in line.split() if word.startswith("http")).rstrip(";")
        cases = (
            ("HTTP scrape, text 0.0.4", {}),
            ("HTTP scrape, as Prometheus asks (OM)", {"Accept": PROMETHEUS_ACCEPT}),
            ("HTTP scrape, OM + gzip", {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}),
        )
        for label, headers in cases:
            request = urllib.request.Request(url, headers=headers)

            def scrape(request: urllib.request.Request = request) -> bytes:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    data: bytes = answer.read()
                    return data

            cpu_before = cpu_seconds(server.pid)
            samples = timed(scrape, runs)
            cpu = (cpu_seconds(server.pid) - cpu_before) / (runs + 1)
            report(label, samples)
            print(f"{'':<40} server CPU per scrape {cpu * 1000:7.2f} ms (mean)")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000, help="simulated domains (1000)")
    parser.add_argument("--runs", type=int, default=50, help="timed scrapes per case (50)")
    args = parser.parse_args()
    uri = f"sim://fleet?guests={args.domains}&seed=1&clock=manual"

    view, host = simulated_view(uri, ticks=3)
    body = render(view, clock=host.now)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    print(
        f"{args.domains} domains: {series} series, {len(body) / KiB:.0f} KiB per scrape; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    report("render in-process, wall clock", timed(lambda: render(view, clock=host.now), args.runs))
    report(
        "render in-process, CPU time",
        timed(lambda: render(view, clock=host.now), args.runs, time.process_time),
    )
    http_scrapes(uri, args.runs)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
