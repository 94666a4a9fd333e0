"""A daemon view made by hand, busy enough that every metric family has a sample, and its
scrape at a fixed time."""

from __future__ import annotations

from balloond.metrics import render
from balloond.metrics.static import StaticView
from balloond.model import (
    Decision,
    DomainDecision,
    DomainSnapshot,
    DomainState,
    GuestReport,
    Hold,
    HostSnapshot,
    MemoryStats,
    Reason,
    Snapshot,
)
from balloond.telemetry import Telemetry
from balloond.units import GiB, MiB

NOW = 1_000_000.0


def hand_made_view(**overrides: object) -> StaticView:
    """Two domains: web1 shrinking (held), db1 growing under pressure (stuck)."""
    web1 = DomainSnapshot(
        "web1",
        "u-web1",
        current=2 * GiB,
        maxmem=4 * GiB,
        id=3,
        stats=MemoryStats(available=GiB, swap_in=4096, swap_out=8192, major_faults=7),
    )
    db1 = DomainSnapshot(
        "db1",
        "u-db1",
        current=3 * GiB,
        maxmem=4 * GiB,
        state=DomainState.PAUSED,
        report=GuestReport(
            seq=1,
            received_at=NOW - 100,
            mem_available=GiB,
            demand=GiB,
            psi_some=0.25,
            psi_full=0.05,
        ),
    )
    snapshot = Snapshot(NOW, HostSnapshot(total=16 * GiB, free=6 * GiB), (web1, db1))
    decision = Decision(
        NOW,
        (
            DomainDecision(
                "web1",
                "u-web1",
                "web",
                Reason.SHRINK_IDLE,
                2 * GiB,
                1536 * MiB,
                GiB,
                4 * GiB,
                "shrink web1",
                act=True,
            ),
            DomainDecision(
                "db1",
                "u-db1",
                "db",
                Reason.GROW_PRESSURE,
                3 * GiB,
                4 * GiB,
                GiB,
                4 * GiB,
                "grow db1",
                demand=2 * GiB,
                pressure=0.25,
                act=True,
                fair_share=3 * GiB,
            ),
            # A domain the snapshot no longer has: must not produce series.
            DomainDecision("gone", "u-gone", "web", Reason.STEADY, GiB, GiB, GiB, GiB, "-"),
        ),
        host_free=6 * GiB,
        reserve=GiB,
        budget=2 * GiB,
    )
    telemetry = Telemetry(started_at=NOW - 3600)
    telemetry.record_connection(True, NOW - 3600)
    telemetry.record_connection(False, NOW - 1000)
    telemetry.record_connection(True, NOW - 900)
    for duration in (0.0005, 0.003, 0.003, 0.2, 30.0):
        telemetry.record_tick(duration, True, NOW - 10)
    telemetry.record_tick(0.002, False, NOW - 5)
    telemetry.record_applied(decision, {"u-web1", "u-db1"})
    telemetry.record_failure("domain_not_found")
    telemetry.record_report("u-db1")  # keyed by UUID: exported under the domain's name
    telemetry.record_report("u-db1", rejected_reason="malformed")
    telemetry.record_policy_load(None)
    telemetry.record_policy_load("policies/web.yaml:3: floor: bad size")
    telemetry.record_operation("migrate", "ok", duration=12.5, downtime=0.25)
    telemetry.record_operation("migrate", "ok", duration=4.0, downtime=0.5)
    telemetry.record_operation("save", "failed")
    fields: dict[str, object] = {
        "uri": "test:///default",
        "reserve": GiB,
        "snapshot": snapshot,
        "decision": decision,
        "counters": telemetry,
        "held": {"u-web1": Hold("u-web1", "balloonctl balloon", "ops")},
        "stuck_until": {"u-db1": NOW + 60},
    }
    fields.update(overrides)
    return StaticView(**fields)  # type: ignore[arg-type]


def scrape(view: StaticView) -> bytes:
    return render(view, clock=lambda: NOW)
