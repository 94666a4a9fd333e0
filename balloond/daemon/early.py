"""Ticking early on a guest's word: a guest agent report that shows the guest stalling above
its policy's `pressure_target` pulls the next tick forward (a fast spike can exhaust a guest
within one interval). Debounced: at most one early tick per `EARLY_TICK_GAP` seconds however
many guests report pressure, so a flood of reports cannot turn into a flood of ticks."""

from __future__ import annotations

import threading

from balloond.model import GuestReport
from balloond.policy.model import Policy

EARLY_TICK_GAP = 0.5


def report_pressure(report: GuestReport) -> float | None:
    """The stall ratio a report shows (PSI `some` over its interval, else its avg10), read
    as the decision core reads it."""
    for value in (report.psi_some, report.psi_some_avg10):
        if value is not None and 0.0 <= value <= 1.0:
            return value
    return None


def under_pressure(policy: Policy, report: GuestReport) -> bool:
    """The report shows stall above the policy's target, on a domain the policy manages."""
    pressure = report_pressure(report)
    return policy.enabled and pressure is not None and pressure > policy.pressure_target


class Debounce:
    """`due(now)` is True at most once per `gap` seconds (thread-safe). A clock that went
    backwards counts as a gap passed."""

    def __init__(self, gap: float = EARLY_TICK_GAP) -> None:
        self.gap = gap
        self._last: float | None = None
        self._lock = threading.Lock()

    def due(self, now: float) -> bool:
        with self._lock:
            last = self._last
            if last is not None and 0.0 <= now - last < self.gap:
                return False
            self._last = now
            return True
