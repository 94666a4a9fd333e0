"""Automatic self-adjustment: move the balloon target toward what the guest wants.

Grow at once (a guest under pressure must not wait), shrink slowly (a step of 1/8 of the
gap per report, as Linux's selfballoon did; anchors), always within the floor and ceiling the
host last told us. Without limits from the host we do not move at all: the guest alone cannot
know what its host will tolerate.
"""

from __future__ import annotations

from balloond_guest.sizes import MIB

SHRINK_FRACTION = 8
MIN_STEP = 4 * MIB  # smaller moves are noise: they cost a balloon operation and gain nothing


class SelfAdjuster:
    def __init__(
        self,
        floor: int | None = None,
        ceiling: int | None = None,
        shrink_fraction: int = SHRINK_FRACTION,
        min_step: int = MIN_STEP,
    ) -> None:
        self.floor = floor
        self.ceiling = ceiling
        self.shrink_fraction = shrink_fraction
        self.min_step = min_step

    def set_limits(self, floor: int, ceiling: int) -> None:
        if floor > ceiling:
            raise ValueError("floor %d is above ceiling %d" % (floor, ceiling))
        self.floor, self.ceiling = floor, ceiling

    @property
    def ready(self) -> bool:
        return self.floor is not None and self.ceiling is not None

    def clamp(self, size: int) -> int:
        floor, ceiling = self._limits()
        return min(ceiling, max(floor, size))

    def step(self, current: int | None, wanted: int | None) -> int | None:
        """The next target from `current` toward `wanted`, or None to stay put."""
        if not self.ready or current is None or wanted is None:
            return None
        goal = self.clamp(wanted)
        gap = abs(goal - current)
        if gap < self.min_step and not self._outside(current):
            return None  # close enough: a balloon move costs more than it gains
        if goal > current:
            return goal
        move = max(gap // self.shrink_fraction, self.min_step)
        # The last step lands on the goal rather than leaving a remainder below min_step.
        nxt = self.clamp(goal if gap - move < self.min_step else current - move)
        return nxt if nxt != current else None

    def _outside(self, current: int) -> bool:
        floor, ceiling = self._limits()
        return current < floor or current > ceiling

    def _limits(self) -> tuple[int, int]:
        if self.floor is None or self.ceiling is None:
            raise ValueError("no limits yet: the host has not sent any")
        return self.floor, self.ceiling
