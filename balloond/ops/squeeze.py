"""`--squeeze`: balloon a guest down to its policy floor before a save or a migration, so
fewer pages are written or sent, and wait (with a timeout) until it gets there."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from balloond.backend.base import Backend
from balloond.errors import DomainNotFound
from balloond.ops.context import find_domain
from balloond.units import MiB

# A guest reports its balloon size in pages; "there" means within this of the target.
SQUEEZE_SLACK = 4 * MiB


@dataclass(frozen=True, slots=True)
class SqueezeResult:
    before: int  # bytes
    target: int
    reached: int  # the size the guest got to before the deadline
    seconds: float

    @property
    def complete(self) -> bool:
        return self.reached <= self.target + SQUEEZE_SLACK


def squeeze(
    backend: Backend,
    name: str,
    floor: int,
    *,
    timeout: float,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SqueezeResult:
    """Set the target to `floor` and wait until the guest's balloon gets there or `timeout`
    passes. A guest that cannot give its memory back (working set above the floor) stops
    short: the caller goes ahead with whatever size it reached."""
    before = _current(backend, name)
    if before <= floor + SQUEEZE_SLACK:
        return SqueezeResult(before=before, target=floor, reached=before, seconds=0.0)
    start = clock()
    backend.set_target(name, floor)
    reached = before
    while True:
        reached = _current(backend, name)
        elapsed = clock() - start
        if reached <= floor + SQUEEZE_SLACK or elapsed >= timeout:
            return SqueezeResult(before=before, target=floor, reached=reached, seconds=elapsed)
        sleep(min(poll, max(0.0, timeout - elapsed)))


def _current(backend: Backend, name: str) -> int:
    try:
        return find_domain(backend, name).current
    except DomainNotFound as exc:
        raise DomainNotFound(f"domain '{name}' vanished while being squeezed") from exc
