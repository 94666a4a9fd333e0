"""Guest reports into the tick: a channel hub (any ReportSource with sync/send_limits) is told
the domains, its reports reach the decision, limits go back to guests only when they change,
and a failing source costs its reports for one tick, never the tick. Plus the decision line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from balloond.daemon.loop import Daemon, LoopSettings
from balloond.daemon.reload import PolicyWatcher
from balloond.daemon.reporting import describe_action
from balloond.model import DomainDecision, DomainSnapshot, GuestReport, Reason
from balloond.policy.model import Amount
from balloond.telemetry import Telemetry
from balloond.units import GiB, MiB
from tests.support.daemon import Recording, sim_host


class Hub:
    """A report source shaped like balloond.channels.AgentHub, with reports we choose."""

    def __init__(self) -> None:
        self.synced: list[list[str]] = []
        self.limits: list[tuple[str, int, int]] = []
        self.canned: dict[str, GuestReport] = {}
        self.fail = False
        self.bug = False
        self.closed = False

    def sync(self, domains: Sequence[DomainSnapshot]) -> None:
        self.synced.append(sorted(d.name for d in domains))

    def reports(self) -> Mapping[str, GuestReport]:
        if self.fail:
            raise OSError("channel hub broke")
        if self.bug:
            raise KeyError("a bug in the hub")
        return dict(self.canned)

    def send_limits(self, uuid: str, floor: int, ceiling: int) -> bool:
        self.limits.append((uuid, floor, ceiling))
        return True

    def close(self) -> None:
        self.closed = True


def _daemon(hub: Hub) -> tuple[Daemon, Recording]:
    host = sim_host()
    backend = Recording(host)
    telemetry = Telemetry()
    policies = PolicyWatcher(None, telemetry)
    daemon = Daemon(
        lambda: backend,
        LoopSettings(reserve=Amount(size=GiB)),
        policies,
        uri="test",
        clock=host.now,
        telemetry=telemetry,
        report_sources=[hub],
    )
    return daemon, backend


def test_hub_is_synced_and_its_reports_reach_the_decision() -> None:
    hub = Hub()
    daemon, backend = _daemon(hub)
    backend.inner.advance(5)
    daemon.tick()
    legacy = next(d for d in backend.inner.domains() if d.name == "legacy")  # no sim agent
    assert hub.synced[-1] == ["batch", "cache", "idle", "leak", "legacy", "web"]
    assert legacy.uuid not in daemon.reports()
    now = backend.inner.now()
    hub.canned[legacy.uuid] = GuestReport(
        seq=1, received_at=now, demand=1536 * MiB, psi_some=0.2, mem_total=legacy.current
    )
    backend.inner.advance(5)
    hub.canned[legacy.uuid] = replace(hub.canned[legacy.uuid], received_at=backend.inner.now())
    decision = daemon.tick()
    assert decision is not None
    assert daemon.reports()[legacy.uuid].seq == 1
    snapshot = daemon.last_snapshot()
    assert snapshot is not None
    assert next(d for d in snapshot.domains if d.name == "legacy").report is not None
    decided = next(d for d in decision.domains if d.name == "legacy")
    assert decided.pressure is not None and decided.pressure >= 0.2


def test_limits_are_sent_once_per_change_and_only_to_reporting_guests() -> None:
    hub = Hub()
    daemon, backend = _daemon(hub)
    for _ in range(3):
        backend.inner.advance(5)
        daemon.tick()
    reporting = set(daemon.reports())
    sent = [uuid for uuid, _, _ in hub.limits]
    assert set(sent) == reporting and len(sent) == len(set(sent)), "once each"
    assert all(floor <= ceiling for _, floor, ceiling in hub.limits)


class Rechanneled(Recording):
    """The domains' agent channels live at `path` + name (libvirt names generated sockets
    by domain id, so a restart moves them)."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)
        self.path = "/run/a/"

    def domains(self) -> list[DomainSnapshot]:
        listed: list[DomainSnapshot] = self.inner.domains()
        return [replace(d, channel=self.path + d.name) for d in listed]


def test_limits_are_sent_again_when_a_domains_channel_moves() -> None:
    hub = Hub()
    host = sim_host()
    backend = Rechanneled(host)
    telemetry = Telemetry()
    daemon = Daemon(
        lambda: backend,
        LoopSettings(reserve=Amount(size=GiB)),
        PolicyWatcher(None, telemetry),
        uri="test",
        clock=host.now,
        telemetry=telemetry,
        report_sources=[hub],
    )
    for _ in range(2):
        host.advance(5)
        daemon.tick()
    first = len(hub.limits)
    assert first == len(daemon.reports()) > 0
    backend.path = "/run/b/"  # every guest restarted: new sockets, new hub connections
    host.advance(5)
    daemon.tick()
    again = {uuid for uuid, _, _ in hub.limits[first:]}
    assert again == set(daemon.reports()), "each reporting guest hears its limits again"


def test_a_failing_source_costs_its_reports_not_the_tick() -> None:
    hub = Hub()
    hub.fail = True
    daemon, backend = _daemon(hub)
    backend.inner.advance(5)
    assert daemon.tick() is not None
    hub.fail, hub.bug = False, True
    backend.inner.advance(5)
    assert daemon.tick() is not None
    assert daemon.reports(), "the simulated host's own reports still arrive"
    assert daemon.telemetry().tick_failures == 0
    daemon.close()
    assert hub.closed


def _action(explanation: str, current: int, target: int) -> DomainDecision:
    return DomainDecision(
        name="web1",
        uuid="u",
        policy="p",
        reason=Reason.GROW_PRESSURE,
        current=current,
        target=target,
        floor=0,
        ceiling=8 * GiB,
        why=explanation,
        act=True,
    )


def test_decision_lines_name_the_domain() -> None:
    line = describe_action(
        _action("grow 1 GiB → 1.5 GiB: pressure 4.1% > 0.5% target", GiB, 3 * GiB // 2)
    )
    assert line == "grow web1 1 GiB → 1.5 GiB: pressure 4.1% > 0.5% target"
    line = describe_action(_action("kept: odd wording", 2 * GiB, GiB))
    assert line == "shrink web1 2 GiB → 1 GiB: kept: odd wording"


def test_a_move_between_sizes_that_round_alike_reads_as_a_move() -> None:
    """Once "shrink web1 2.2 GiB → 2.2 GiB (-48 MiB)"; the core's explanations and the line's
    own sizes now tell such sizes apart (units.format_sizes_apart)."""
    line = describe_action(_action("shrink 1.55 GiB → 1.47 GiB: idle", 1584 * MiB, 1505 * MiB))
    assert line == "shrink web1 1.55 GiB → 1.47 GiB: idle"
    line = describe_action(_action("kept: odd wording", 1584 * MiB, 1505 * MiB))
    assert line == "shrink web1 1.55 GiB → 1.47 GiB: kept: odd wording"


def test_a_decision_line_ends_with_the_policy_and_its_rule() -> None:
    action = _action("grow 1 GiB → 1.5 GiB: pressure 4.1% > 0.5% target", GiB, 3 * GiB // 2)
    line = describe_action(action, "name 'web*'")
    assert line == (
        "grow web1 1 GiB → 1.5 GiB: pressure 4.1% > 0.5% target [policy 'p' by name 'web*']"
    )


def test_a_target_equal_to_the_balloon_reads_as_a_stop() -> None:
    """The lab: a shrink to 256 MiB was in flight when the law wanted the guest kept at its
    273 MiB; the line said "shrink 273 MiB → 273 MiB (-0 B)"."""
    line = describe_action(
        _action("shrink 273 MiB → 273 MiB: idle, demand 65 MiB", 273 * MiB, 273 * MiB), "name 'c1'"
    )
    assert line == "stop web1 at 273 MiB: idle, demand 65 MiB [policy 'p' by name 'c1']"
    assert describe_action(_action("kept: odd", GiB, GiB)) == "stop web1 at 1 GiB: kept: odd"
