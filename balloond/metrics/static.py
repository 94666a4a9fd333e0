"""A DaemonView over fixed values: what an observer holds after reading a daemon once.

`balloonctl top` renders one from each control-socket answer; the benchmark and tests build
one from a simulated host. It satisfies `balloond.view.DaemonView`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from balloond.model import Decision, GuestReport, Hold, Snapshot
from balloond.telemetry import Telemetry
from balloond.view import DaemonView


@dataclass(frozen=True)
class StaticView:
    uri: str
    reserve: int
    snapshot: Snapshot | None = None
    decision: Decision | None = None
    counters: Telemetry = field(default_factory=Telemetry)
    held: Mapping[str, Hold] = field(default_factory=dict)
    stuck_until: Mapping[str, float] = field(default_factory=dict)
    last_reports: Mapping[str, GuestReport] = field(default_factory=dict)

    @classmethod
    def of(cls, view: DaemonView) -> StaticView:
        """What `view` (a running daemon) shows now, fixed."""
        return cls(
            uri=view.uri,
            reserve=view.reserve,
            snapshot=view.last_snapshot(),
            decision=view.last_decision(),
            counters=view.telemetry(),
            held=dict(view.holds()),
            stuck_until=dict(view.stuck()),
            last_reports=dict(view.reports()),
        )

    def last_snapshot(self) -> Snapshot | None:
        return self.snapshot

    def last_decision(self) -> Decision | None:
        return self.decision

    def telemetry(self) -> Telemetry:
        return self.counters.copy()

    def holds(self) -> Mapping[str, Hold]:
        return self.held

    def stuck(self) -> Mapping[str, float]:
        return self.stuck_until

    def reports(self) -> Mapping[str, GuestReport]:
        return self.last_reports
