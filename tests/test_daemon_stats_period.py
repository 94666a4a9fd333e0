"""The daemon turns on the virtio-balloon statistics period where it is off (libvirt then
reports no last_update), once per domain per connection, never in a dry run, and leaves
a period that is already on alone. Stale statistics (old last_update) are no data."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import replace
from typing import Any

from balloond.errors import OperationFailed
from balloond.model import DomainSnapshot, Reason
from tests.support.daemon import FlakyLink, Recording, make_daemon, sim_host


class PeriodHost(Recording):
    """The simulated host, with some domains' stats period off (statistics without a
    last_update, as libvirt gives them) and a recorder of ensure_stats_period calls."""

    def __init__(self, inner: Any, off: set[str], refuse: Set[str] = frozenset()) -> None:
        super().__init__(inner)
        self.off, self.refuse = off, refuse
        self.periods: list[tuple[str, int]] = []

    def domains(self) -> list[DomainSnapshot]:
        listed: list[DomainSnapshot] = self.inner.domains()
        return [
            replace(d, stats=replace(d.stats, last_update=None))
            if d.name in self.off and d.stats is not None
            else d
            for d in listed
        ]

    def ensure_stats_period(self, name: str, seconds: int) -> None:
        self.periods.append((name, seconds))
        if name in self.refuse:
            raise OperationFailed(f"domain '{name}': no balloon device")
        self.off.discard(name)


def test_the_period_is_set_where_it_is_off_once_per_connection() -> None:
    host = sim_host()
    host.advance(5)  # the simulated guests have statistics from their first step on
    backend = PeriodHost(host, off={"web", "idle"}, refuse={"idle"})
    daemon = make_daemon(lambda: backend, clock=host.now)
    daemon.tick()
    period = daemon.settings.stats_period
    assert sorted(backend.periods) == [("idle", period), ("web", period)]
    host.advance(5)
    daemon.tick()
    host.advance(5)
    daemon.tick()
    # web's period is on now; idle refused, and is not asked again on this connection.
    assert sorted(backend.periods) == [("idle", period), ("web", period)]
    assert daemon.telemetry().tick_failures == 0


def test_a_reconnect_asks_again_where_it_is_still_off() -> None:
    host = sim_host()
    link = FlakyLink(host)
    backends: list[PeriodHost] = []

    def connect() -> PeriodHost:
        link.connect()
        backends.append(PeriodHost(host, off={"web"}, refuse={"web"}))
        return backends[-1]

    host.advance(5)
    daemon = make_daemon(connect, clock=host.now)
    daemon.tick()
    link.drop()
    host.advance(5)
    assert daemon.tick() is None
    link.restore()
    host.advance(120)
    daemon.tick()
    period = daemon.settings.stats_period
    assert [b.periods for b in backends] == [[("web", period)], [("web", period)]]


def test_a_dry_run_does_not_even_set_the_period() -> None:
    host = sim_host()
    backend = PeriodHost(host, off={"web"})
    daemon = make_daemon(lambda: backend, clock=host.now, dry_run=True)
    daemon.tick()
    assert backend.periods == []


def test_stale_statistics_are_no_data_and_never_shrink() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    for _ in range(3):
        host.advance(5)
        daemon.tick()
    snapshot = daemon.last_snapshot()
    assert snapshot is not None
    web = next(d for d in snapshot.domains if d.name == "web")
    assert web.stats is not None and web.stats.last_update is not None
    # The same host read again far later: every sample is older than stale_after.
    later = web.stats.last_update + daemon.settings.stale_after_seconds + 60
    decision, _ = _decide_at(daemon, snapshot, later)
    stale = next(d for d in decision.domains if d.name == "web")
    assert stale.reason is Reason.NO_DATA and stale.target >= web.current
    assert "s old" in stale.explanation, stale.explanation


def _decide_at(daemon: Any, snapshot: Any, now: float) -> Any:
    """The daemon's own law on `snapshot` taken at `now`, without reports, from scratch."""
    from balloond.core.state import ControllerState

    without_reports = replace(
        snapshot,
        taken_at=now,
        domains=tuple(replace(d, report=None) for d in snapshot.domains),
    )
    return daemon.decide(without_reports, {}, ControllerState.empty())
