"""Connection slots for the daemon's two servers (the control socket, the metrics endpoint).

Their clients may be hostile, and neither server may be locked out by them. Two rules:

- A request has a deadline, counted from the moment its connection was accepted (or its
  previous answer went out), not from its last byte: a client sending a byte a second, a
  header line every five seconds, or nothing at all, is cut off when the deadline passes.
- At most `limit` connections are open at once. When all slots are taken, a new connection
  sheds the oldest one that is still waiting for its request: slow clients make room, and
  an operator's `status` or a Prometheus scrape, which send their request at once, get in.
  Only when every slot is answering a complete request is a new connection turned away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]


class Slot:
    """One admitted connection. `shed` cuts it off (called by `Slots`, at most once)."""

    __slots__ = ("_shed", "answering", "deadline", "since")

    def __init__(self, shed: Callable[[], None], since: float, deadline: float) -> None:
        self._shed: Callable[[], None] | None = shed
        self.since = since  # when its current request began to be awaited
        self.deadline = deadline
        self.answering = False  # a complete request is being answered: not to be shed

    @property
    def expires(self) -> float:
        return self.since + self.deadline

    def shed(self) -> None:
        shed, self._shed = self._shed, None
        if shed is not None:
            shed()


class Slots:
    """`limit` slots; a request must arrive within `deadline` seconds. Thread-safe."""

    def __init__(self, limit: int, deadline: float, clock: Clock = time.monotonic) -> None:
        if limit < 1 or deadline <= 0:
            raise ValueError(f"slots need limit >= 1 and deadline > 0, got {limit}, {deadline}")
        self.limit = limit
        self.deadline = deadline
        self._clock = clock
        self._open: list[Slot] = []  # oldest first
        self._lock = threading.Lock()
        self.shed_count = 0
        self.refused_count = 0

    def take(self, shed: Callable[[], None]) -> Slot | None:
        """A slot for a new connection (shedding the oldest waiting one when all are
        taken), or None when every slot is answering."""
        with self._lock:
            victim = None
            if len(self._open) >= self.limit:
                victim = next((slot for slot in self._open if not slot.answering), None)
                if victim is None:
                    self.refused_count += 1
                    return None
                self._open.remove(victim)
                self.shed_count += 1
            slot = Slot(shed, self._clock(), self.deadline)
            self._open.append(slot)
        if victim is not None:
            victim.shed()
        return slot

    def answering(self, slot: Slot) -> None:
        """Its request is complete: it is being answered, and may not be shed."""
        slot.answering = True

    def waiting(self, slot: Slot, deadline: float | None = None) -> None:
        """Its answer went out (or is going out, with `deadline` to finish): the next
        request's deadline starts now, and it may be shed again."""
        with self._lock:
            slot.answering = False
            slot.since = self._clock()
            if deadline is not None:
                slot.deadline = deadline
            if slot in self._open:  # a new slot for the next request: the newest
                self._open.remove(slot)
                self._open.append(slot)

    def remaining(self, slot: Slot) -> float:
        return slot.expires - self._clock()

    def give_back(self, slot: Slot) -> None:
        with self._lock:
            if slot in self._open:
                self._open.remove(slot)

    def overdue(self) -> list[Slot]:
        """Slots still waiting for a request past its deadline (the caller sheds them)."""
        now = self._clock()
        with self._lock:
            return [slot for slot in self._open if not slot.answering and slot.expires <= now]

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)
