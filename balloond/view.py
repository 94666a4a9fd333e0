"""What observers (metrics collector, control socket, `balloonctl top`) may read of a running
daemon. The daemon implements it; observers never mutate through it. A view that keeps time
of its own (the daemon) is also a `ClockedView`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class ClockedView(Protocol):
    """A view on its own clock (the daemon: a simulated host's clock may run ahead of the
    wall). Its snapshots and reports are stamped on that clock, so ages are measured on it."""

    def clock(self) -> float:
        """Now, in epoch seconds, on the view's clock."""
        ...
