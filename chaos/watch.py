"""What an attack costs the daemon, watched from outside while it runs.

A sampler reads the daemon's resident memory and CPU time from /proc and the end of its last
tick from its textfile every 50 ms; a scraper fetches /metrics four times a second, as an
impatient Prometheus would. Neither goes through the daemon's own code.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from chaos.lab import Daemon, cpu_seconds, rss

SCRAPE_EVERY = 0.25
SCRAPE_TIMEOUT = 10.0
SAMPLE_EVERY = 0.05


@dataclass
class Figures:
    """One attack's measurements; None where the attack did not measure it."""

    scrape_p99: float | None = None  # seconds; a failed scrape counts as SCRAPE_TIMEOUT
    scrapes: int = 0
    scrape_failures: int = 0
    rss_before: int | None = None  # bytes
    rss_peak: int | None = None
    rss_after: int | None = None
    tick_gap_max: float | None = None  # seconds between two tick ends, the longest seen
    cpu_share: float | None = None  # daemon CPU seconds per second of attack
    status_answered: bool | None = None
    state_intact: bool | None = None
    limits_kept: bool | None = None
    notes: list[str] = field(default_factory=list)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class Watch:
    """`with Watch(daemon, figures) as watch:` around an attack fills `figures`."""

    def __init__(self, daemon: Daemon, figures: Figures, *, scrape: bool = True) -> None:
        self.daemon = daemon
        self.figures = figures
        self._scrape = scrape
        self._stop = threading.Event()
        self._latencies: list[float] = []
        self._ticks: list[float] = []
        self._peak = 0
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self._cpu_start: float | None = None

    def __enter__(self) -> Watch:
        pid = self.daemon.pid
        self.figures.rss_before = rss(pid)
        self._peak = self.figures.rss_before or 0
        self._cpu_start = cpu_seconds(pid)
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._sample, daemon=True)]
        if self._scrape:
            self._threads.append(threading.Thread(target=self._scraper, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.finish()

    def finish(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(SCRAPE_TIMEOUT + 1)
        wall = time.monotonic() - self._started
        figures, pid = self.figures, self.daemon.pid
        cpu_end = cpu_seconds(pid)
        if self._cpu_start is not None and cpu_end is not None and wall > 0:
            figures.cpu_share = (cpu_end - self._cpu_start) / wall
        figures.rss_peak = self._peak or None
        ticks = sorted(set(self._ticks))
        now = time.time()
        if ticks:
            gaps = [b - a for a, b in itertools.pairwise(ticks)] + [now - ticks[-1]]
            figures.tick_gap_max = max(gaps)
        elif self.daemon.last_tick() is not None:
            figures.tick_gap_max = now - (self.daemon.last_tick() or now)
        if self._scrape:
            figures.scrapes = len(self._latencies)
            figures.scrape_p99 = p99(self._latencies) if self._latencies else None

    def _sample(self) -> None:
        pid = self.daemon.pid
        while not self._stop.is_set():
            size = rss(pid)
            if size is not None:
                self._peak = max(self._peak, size)
            tick = self.daemon.last_tick()
            if tick is not None:
                self._ticks.append(tick)
            self._stop.wait(SAMPLE_EVERY)

    def _scraper(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                self.daemon.scrape(timeout=SCRAPE_TIMEOUT)
                self._latencies.append(time.monotonic() - start)
            except OSError:
                self.figures.scrape_failures += 1
                self._latencies.append(SCRAPE_TIMEOUT)
            self._stop.wait(max(0.0, SCRAPE_EVERY - (time.monotonic() - start)))
