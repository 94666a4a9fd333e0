"""Counters the daemon keeps about itself. Plain Python, no prometheus types: the metrics
collector (balloond.metrics) reads them at scrape time, `balloonctl status` reads them over the
control socket, and tests read them directly.

Thread-safety: mutated only by the daemon's tick thread and its report/channel threads under
`lock`; readers take a consistent copy with `copy()`.
"""

from __future__ import annotations

import copy as _copy
import threading
from collections import Counter
from dataclasses import dataclass, field

from balloond.model import Decision, Reason

# Tick-duration histogram buckets (seconds): a 1000-domain tick should sit well under 0.1 s.
TICK_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# Every label value a counter below can take, known before anything has happened: the metrics
# export each of them from the start, at 0, so that increase() in an alert sees the first
# failure after a start and a dashboard shows 0 rather than "no data". A label value used in
# the code but missing here fails tests/test_metrics_known.py.
DIRECTIONS = ("grow", "shrink")
ADJUSTMENT_REASONS = tuple(reason.value for reason in Reason)
FAILURE_REASONS = (
    "set_target",  # libvirt refused the new target
    "domain_vanished",  # the domain went away between list and act (a race, not an error)
    "connection_lost",  # the connection dropped while acting
)
REPORT_REJECT_REASONS = (
    "too_long",
    "bad_encoding",
    "bad_json",
    "bad_field",
    "version",
    "stale_seq",
    "out_of_range",
    "rate_limited",
)
OPERATIONS = ("save", "restore", "migrate", "balloon", "maxmem")
OPERATION_RESULTS = ("ok", "failed", "refused", "aborted")


@dataclass
class Telemetry:
    started_at: float = 0.0
    ticks: int = 0
    tick_failures: int = 0
    last_tick_at: float | None = None  # epoch of the last successful tick
    tick_bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(TICK_BUCKETS) + 1))
    tick_duration_sum: float = 0.0
    libvirt_up: bool = False
    libvirt_down_since: float | None = None
    reconnects: int = 0
    policy_reloads: int = 0
    policy_errors: int = 0
    last_policy_error: str | None = None
    state_write_failures: int = 0  # state file writes that failed (the old file stays)
    last_state_error: str | None = None  # why the most recent write failed; None: it worked
    # (direction, reason) -> count; direction is "grow" or "shrink"
    adjustments: Counter[tuple[str, str]] = field(default_factory=Counter)
    bytes_moved: Counter[str] = field(default_factory=Counter)  # direction -> bytes
    failures: Counter[str] = field(default_factory=Counter)  # reason -> count
    reports_accepted: Counter[str] = field(default_factory=Counter)  # domain -> count
    reports_rejected: Counter[str] = field(default_factory=Counter)  # reason -> count
    channel_cutoffs: Counter[str] = field(default_factory=Counter)  # domain UUID -> count
    # (operation, result) -> count; operation: save, restore, migrate, balloon, maxmem
    operations: Counter[tuple[str, str]] = field(default_factory=Counter)
    migration_durations: list[float] = field(default_factory=list)  # recent, seconds
    migration_downtimes: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_tick(self, duration: float, ok: bool, now: float) -> None:
        with self.lock:
            self.ticks += 1
            self.tick_duration_sum += duration
            index = next(
                (i for i, b in enumerate(TICK_BUCKETS) if duration <= b), len(TICK_BUCKETS)
            )
            self.tick_bucket_counts[index] += 1
            if ok:
                self.last_tick_at = now
            else:
                self.tick_failures += 1

    def record_applied(self, decision: Decision, applied: set[str]) -> None:
        """Count the actions of `decision` whose domain UUIDs are in `applied`."""
        with self.lock:
            for action in decision.actions:
                if action.uuid not in applied:
                    continue
                direction = "grow" if action.delta > 0 else "shrink"
                self.adjustments[(direction, action.reason.value)] += 1
                self.bytes_moved[direction] += abs(action.delta)

    def record_failure(self, reason: str) -> None:
        with self.lock:
            self.failures[reason] += 1

    def record_report(
        self, domain: str, rejected_reason: str | None = None, count: int = 1
    ) -> None:
        with self.lock:
            if rejected_reason is None:
                self.reports_accepted[domain] += count
            else:
                self.reports_rejected[rejected_reason] += count

    def record_cutoff(self, domain: str) -> None:
        """An agent channel over its byte budget was cut off (`domain`: its UUID)."""
        with self.lock:
            self.channel_cutoffs[domain] += 1

    def record_connection(self, up: bool, now: float) -> None:
        with self.lock:
            if up and not self.libvirt_up and self.libvirt_down_since is not None:
                self.reconnects += 1
            if not up and self.libvirt_up:
                self.libvirt_down_since = now
            if up:
                self.libvirt_down_since = None
            self.libvirt_up = up

    def record_policy_load(self, error: str | None) -> None:
        with self.lock:
            self.policy_reloads += 1
            if error is not None:
                self.policy_errors += 1
            self.last_policy_error = error

    def record_state_write(self, error: str | None) -> None:
        with self.lock:
            if error is not None:
                self.state_write_failures += 1
            self.last_state_error = error

    def record_operation(
        self,
        operation: str,
        result: str,
        duration: float | None = None,
        downtime: float | None = None,
    ) -> None:
        with self.lock:
            self.operations[(operation, result)] += 1
            if operation == "migrate" and result == "ok":
                if duration is not None:
                    self.migration_durations = [*self.migration_durations[-99:], duration]
                if downtime is not None:
                    self.migration_downtimes = [*self.migration_downtimes[-99:], downtime]

    def copy(self) -> Telemetry:
        with self.lock:
            clone = _copy.copy(self)
            for name in (
                "adjustments",
                "bytes_moved",
                "failures",
                "reports_accepted",
                "reports_rejected",
                "channel_cutoffs",
                "operations",
            ):
                setattr(clone, name, Counter(getattr(self, name)))
            clone.tick_bucket_counts = list(self.tick_bucket_counts)
            clone.migration_durations = list(self.migration_durations)
            clone.migration_downtimes = list(self.migration_downtimes)
            clone.lock = threading.Lock()
            return clone
