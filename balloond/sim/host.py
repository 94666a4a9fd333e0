"""The host model: a fixed amount of memory, the host's own use, and guests that boot, run and
shut down on the scenario's schedule.

Memory is charged Xen-style: a guest holds its whole balloon `current` whether or not it
touches it, so `free = memory - used - Σ current`. A balloon only deflates (grows) into memory the
host has free, as with Xen; guests booting at their initial size may still push free below
zero. The benchmark counts every step where free is below the reserve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from balloond.backend.base import EventKind
from balloond.model import DomainState
from balloond.sim.guest import SimGuest
from balloond.sim.scenario import Scenario

EventSink = Callable[[EventKind, SimGuest, float], None]


class SimHost:
    """Steps every active guest. Time `t` is seconds since the scenario started."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.memory = scenario.host.memory
        self.reserve = scenario.host.reserve
        self.used = scenario.host.used
        self.t = 0.0
        self.guests: dict[str, SimGuest] = {}  # active guests, by name
        self.pending: list[SimGuest] = [
            SimGuest(spec, scenario.name, domain_id=i + 1) for i, spec in enumerate(scenario.guests)
        ]  # not yet booted (or shut down and waiting for nothing)
        self.on_event: EventSink | None = None
        self._now = 0.0
        self._boot_due(0.0)

    @property
    def free(self) -> int:
        return self.memory - self.used - sum(g.current for g in self.guests.values())

    def active(self) -> Iterator[SimGuest]:
        return iter(self.guests.values())

    def trace_time(self, t: float | None = None) -> float:
        """Scenario time for the traces: wraps around when the scenario repeats."""
        t = self.t if t is None else t
        if self.scenario.repeat and t >= self.scenario.duration:
            return t % self.scenario.duration
        return t

    def advance(self, seconds: float, now: float) -> None:
        """Advance `seconds` in whole steps (a remainder below one step is dropped);
        `now` is the epoch at the end, spread over the steps for `last_update`."""
        step = self.scenario.step
        steps = max(0, int(round(seconds / step, 9)))
        start_now = now - steps * step
        for i in range(1, steps + 1):
            self.step(start_now + i * step)

    def step(self, now: float) -> None:
        dt = self.scenario.step
        t = self.trace_time()
        self._now = now
        room = max(0, self.free)
        for guest in list(self.guests.values()):
            if guest.state == DomainState.RUNNING:  # a paused guest's stats go stale
                before = guest.current
                guest.step(t, dt, now, room=room)
                room = max(0, room - (guest.current - before))
        self.t += dt
        self._stop_due(self.t)
        self._boot_due(self.t)

    def _boot_due(self, t: float) -> None:
        due = [
            g
            for g in self.pending
            if g.spec.start <= t and (g.spec.stop is None or g.spec.stop > t)
        ]
        for guest in due:
            self.pending.remove(guest)
            self.guests[guest.spec.name] = guest
            self._emit(EventKind.STARTED, guest)

    def _stop_due(self, t: float) -> None:
        for guest in [
            g for g in self.guests.values() if g.spec.stop is not None and g.spec.stop <= t
        ]:
            del self.guests[guest.spec.name]
            self._emit(EventKind.STOPPED, guest)

    def _emit(self, kind: EventKind, guest: SimGuest) -> None:
        if self.on_event is not None:
            self.on_event(kind, guest, self._now)

    # -- operations the backend offers --------------------------------------------------------

    def remove(self, name: str) -> SimGuest:
        """Take a guest off this host (save, migrate away, vanish)."""
        guest = self.guests.pop(name)
        return guest

    def adopt(self, guest: SimGuest) -> None:
        """Run a guest here (restore, migrate in)."""
        self.guests[guest.spec.name] = guest
