"""The need of a guest that is short of memory: what its reading cannot show.

A guest short of memory reads less than it needs: its used memory is capped by its balloon.
Its need is judged by the shortage itself (the signs are in `balloond.core.signals`):

- the memory it has in swap, while it thrashes (`in_swap`; the agent reports swap use);
- the need *pressed* out of it (`pressed_need`): while it stays short it needs more than it
  has, by a step that grows with its stall, or, with or without an agent, with what it
  pages back in (`press_step`). The step is taken from what the guest has, so a balloon
  still on its way (a slow driver, a grant the host could not cover yet) pushes nothing
  further. The need found so is remembered (`DomainMemo.pressed`): kept a moment once the
  shortage stops, never above what the guest then holds (a guest that does not stall has
  all it needs), and forgotten quickly after (`held_pressed`).

Small steps on purpose: under contention this need decides how much a guest takes from the
others (the fair share), so overshooting it costs them. Senpai grows a limit by up to 100 %
a second under stall (shared/notes/anchors.md); the *want* of a stalled guest is boosted
that generously (`estimate.corrected`), which costs only reclaim when the host has room.
"""

from __future__ import annotations

from typing import NamedTuple

from balloond.core.state import DomainMemo
from balloond.model import GuestReport
from balloond.units import PAGE, MiB

# One tick of shortage pushes the need up by PRESS_PER_TARGET x (pressure / pressure_target)
# of what the guest has (2 % at ten times the target, 10 % at fifty), or by what it paged
# back in over PRESS_WINDOW seconds, whichever says more; at least PRESS_MIN, at most
# PRESS_MAX. (Without PSI the paging figures are all there is.)
PRESS_MIN = 0.01
PRESS_PER_TARGET = 0.002
PRESS_MAX = 0.25
PRESS_WINDOW = 10.0  # seconds of paging counted as memory the guest did not have
# Once the shortage stops, the need found is kept PRESS_KEEP seconds (two ticks: the grow
# lands and the statistics catch up with it), then what it exceeds the reading by halves
# every PRESS_HALF_LIFE seconds.
PRESS_KEEP = 4.0
PRESS_HALF_LIFE = 10.0
PRESS_FORGET = MiB  # an excess below this is forgotten (the memo carries it no more)


def half_life_factor(age: float, half_life: float) -> float:
    """What is left of a learned amount after `age` seconds (a negative age: all of it)."""
    left: float = 0.5 ** (max(age, 0.0) / half_life)
    return left


class Pressed(NamedTuple):
    """The need found from a guest's shortage, for this tick and the next memo."""

    need: int  # bytes in the guest's terms; 0: none (never short, or forgotten)
    at: float | None  # when the guest was last short


def in_swap(raw: int, visible: int, report: GuestReport | None) -> int:
    """The need an agent's swap figures witness: what the guest holds (its reading, up to its
    MemTotal `visible`) plus what it has in swap; 0 without the agent's figures. Asked only
    while the guest is short: once it has room, what it swapped out comes back slowly and
    would be counted twice meanwhile."""
    if report is None or report.swap_total is None or report.swap_free is None:
        return 0
    swapped = report.swap_total - report.swap_free
    if not 0 < swapped <= 4 * max(raw, visible):
        return 0
    return min(raw, visible) + swapped


class Shortage(NamedTuple):
    """What a short guest shows this tick (`balloond.core.signals`)."""

    pressure: float | None  # PSI some ratio
    swap_in_rate: float | None  # bytes/s
    major_fault_rate: float | None  # faults/s


def press_step(shortage: Shortage, pressure_target: float, size: int) -> float:
    """How far one tick of shortage pushes the need up, as a share of what the guest has
    (`size`): by its stall, or by what it brought back in (swap-in, or major faults, which
    count swap-ins too) over PRESS_WINDOW seconds, whichever says more."""
    by_stall = 0.0
    if shortage.pressure is not None and pressure_target > 0.0:
        by_stall = PRESS_PER_TARGET * shortage.pressure / pressure_target
    back_in = max(shortage.swap_in_rate or 0.0, (shortage.major_fault_rate or 0.0) * PAGE)
    by_paging = back_in * PRESS_WINDOW / size if size > 0 else 0.0
    return min(PRESS_MAX, max(PRESS_MIN, by_stall, by_paging))


def held_pressed(memo: DomainMemo, reading: int, now: float) -> int:
    """The need found earlier, as carried to this tick: whole for PRESS_KEEP seconds after
    the shortage stopped, then its excess over the `reading` halving every PRESS_HALF_LIFE
    seconds (0: none, no more than the reading, or forgotten)."""
    if memo.pressed is None or memo.pressed_at is None or memo.pressed <= reading:
        return 0
    age = now - memo.pressed_at - PRESS_KEEP
    excess = int((memo.pressed - reading) * half_life_factor(age, PRESS_HALF_LIFE))
    return reading + excess if excess >= PRESS_FORGET else 0


def pressed_need(
    memo: DomainMemo,
    reading: int,
    visible: int,
    shortage: Shortage | None,
    pressure_target: float,
    now: float,
) -> Pressed:
    """The need found from the guest's shortage (None: not short): while short, more than it
    has (`visible`, its MemTotal, or its `reading` if larger) by `press_step`, and at least
    what was found before; once the shortage stops, what was found is held (`held_pressed`)
    but never above what the guest holds."""
    held = held_pressed(memo, reading, now)
    if shortage is None:
        need = min(held, max(visible, reading))
        return Pressed(need=need, at=memo.pressed_at if need else None)
    base = max(reading, visible)
    need = max(held, base + int(base * press_step(shortage, pressure_target, base)))
    return Pressed(need=need, at=now)
