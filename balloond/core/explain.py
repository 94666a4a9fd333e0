"""Words for decisions: every DomainDecision says, with values, why its target is what it is.

Kept apart from the arithmetic so the law reads cleanly; pure string building, no clock (hold
times are rendered from the epoch the hold carries, in UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from balloond.core.estimate import Estimate
from balloond.model import DomainState, Hold, JobKind
from balloond.policy.model import Amount
from balloond.units import format_size, format_sizes_apart

# Sizes repeat from tick to tick (a steady guest's size, floors, deadbands): cache their text.
sz = lru_cache(maxsize=8192)(format_size)


@lru_cache(maxsize=256)
def amount(value: Amount) -> str:
    """A policy amount ("5%", "16 MiB") as the operator wrote it; policies are few."""
    return str(value)


def pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def clock(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, tz=UTC).strftime("%H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"epoch {epoch:.0f}"


def busy(state: DomainState, job: JobKind | None, current: int) -> str:
    if job is not None:
        return f"left alone at {sz(current)}: {job.value} job in progress"
    return f"left alone at {sz(current)}: domain is {state.value}"


def disabled(current: int, policy: str) -> str:
    return f"left alone at {sz(current)}: policy '{policy}' is disabled"


def no_data(current: int, why: str) -> str:
    return f"kept at {sz(current)}: no data ({why})"


def held(hold: Hold, current: int) -> str:
    pin = f"pinned at {sz(hold.target)}" if hold.target is not None else f"kept at {sz(current)}"
    until = "until released" if hold.until is None else f"until {clock(hold.until)}"
    why = f" ({hold.reason})" if hold.reason else ""
    return f"held by {hold.owner} {until}{why}: {pin}"


def stuck(current: int, target: int | None, retry_at: float, strikes: int) -> str:
    toward = f" toward {sz(target)}" if target is not None else ""
    return (
        f"stuck at {sz(current)}: balloon did not move{toward}; "
        f"retry at {clock(retry_at)} (strike {strikes})"
    )


def cause(est: Estimate, buffer: float, pressure_target: float, growing: bool) -> str:
    """Why the guest wants what it wants, in its own figures."""
    demand = sz(est.demand or 0)
    if est.hidden:
        demand += f" (with {sz(est.hidden)} of hot cache learned from stalls)"
    if est.short:
        if est.pressure is not None and est.pressure > pressure_target:
            head = f"pressure {pct(est.pressure)} > {pct(pressure_target)} target"
        elif est.swap_in_rate:
            head = f"swapping in {sz(int(est.swap_in_rate))}/s"
        else:
            head = f"{est.major_fault_rate or 0:.0f} major faults/s"
        return f"{head}; demand {demand} + {buffer * 100:.0f}% buffer{_unseen(est)}"
    word = "" if growing else "idle, "
    return f"{word}demand {demand} + {buffer * 100:.0f}% buffer{_unseen(est)}"


def _unseen(est: Estimate) -> str:
    return f" + {sz(est.overhead)} not in MemTotal" if est.overhead else ""


def move(current: int, target: int, because: str) -> str:
    verb = "grow" if target > current else "shrink"
    before, after = format_sizes_apart(current, target)  # never "grow 4.0 GiB → 4 GiB"
    return f"{verb} {before} → {after}: {because}"
