"""What observers (metrics collector, control socket, `balloonctl top`) may read of a running
daemon. The daemon implements it; observers never mutate through it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from balloond.model import Decision, GuestReport, Hold, Snapshot
from balloond.telemetry import Telemetry


class DaemonView(Protocol):
    @property
    def uri(self) -> str: ...

    @property
    def reserve(self) -> int:
        """Host reserve in bytes."""
        ...

    def last_snapshot(self) -> Snapshot | None: ...

    def last_decision(self) -> Decision | None: ...

    def telemetry(self) -> Telemetry:
        """A consistent copy of the daemon's counters."""
        ...

    def holds(self) -> Mapping[str, Hold]:
        """Active holds by domain UUID."""
        ...

    def stuck(self) -> Mapping[str, float]:
        """Domains excluded as stuck: UUID -> epoch when they are retried."""
        ...

    def reports(self) -> Mapping[str, GuestReport]:
        """Last accepted guest report by domain UUID."""
        ...
