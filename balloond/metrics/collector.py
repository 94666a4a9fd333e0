"""The Prometheus collector: observes a running daemon through its DaemonView at scrape time.

It keeps no state of its own and never changes the daemon: every scrape reads the last
snapshot, decision, a copy of the telemetry, the holds, the stuck set and the reports, and
turns them into metric families. Register it explicitly (`make_registry`), never at import.

No `_created` series: custom families only emit them when given a `created` value, and we
never give one, so nothing global (`disable_created_metrics`) needs touching.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from balloond.metrics.daemon import daemon_families
from balloond.metrics.domains import DomainInputs, domain_families, host_families
from balloond.metrics.families import Family, render_text, to_metric
from balloond.view import ClockedView, DaemonView

Clock = Callable[[], float]


def clock_of(view: DaemonView, clock: Clock | None = None) -> Clock:
    """The clock ages are measured on: the one given, else the view's own (`ClockedView`:
    the daemon), else the wall clock. Report timestamps are on the daemon's clock, so "now"
    must be too."""
    if clock is not None:
        return clock
    return view.clock if isinstance(view, ClockedView) else time.time


def families(view: DaemonView, clock: Clock | None = None) -> Iterator[Family]:
    """Every family of one scrape of `view`, as plain data."""
    snapshot = view.last_snapshot()
    decision = view.last_decision()
    names = {d.uuid: d.name for d in snapshot.domains} if snapshot else {}
    yield from daemon_families(view.telemetry(), names)
    yield from host_families(snapshot, decision, view.reserve)
    if snapshot is None:
        return
    inputs = DomainInputs(
        decisions={d.uuid: d for d in decision.domains} if decision else {},
        reports=dict(view.reports()),
        holds=frozenset(view.holds()),
        stuck=frozenset(view.stuck()),
    )
    yield from domain_families(snapshot, inputs, clock_of(view, clock)())


class BalloondCollector(Collector):
    """`clock`: see `clock_of`."""

    def __init__(self, view: DaemonView, *, clock: Clock | None = None) -> None:
        self._view = view
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        return (to_metric(family) for family in families(self._view, self._clock))

    def describe(self) -> list[Metric]:
        # Returning nothing tells the registry not to call collect() at registration,
        # so registering before the daemon's first tick is cheap and side-effect free.
        return []


def make_registry(view: DaemonView, *, clock: Clock | None = None) -> CollectorRegistry:
    """A fresh registry holding only balloond's collector (no process or GC collectors:
    the global default registry is left alone)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BalloondCollector(view, clock=clock))
    return registry


def render(view: DaemonView, *, clock: Clock | None = None) -> bytes:
    """One scrape's text exposition (format 0.0.4), by the fast path (see families.py)."""
    return render_text(families(view, clock))
