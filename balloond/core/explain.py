"""Words for decisions: every DomainDecision says, with values, why its target is what it is.

Kept apart from the arithmetic so the law reads cleanly; pure string building, no clock (hold
times are rendered from the epoch the hold carries, in UTC). The core hands these functions
to `balloond.model.Explanation` with the facts they need, so a text is written only when it
is read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from balloond.core.estimate import Estimate
from balloond.core.want import GROW_COOLDOWN
from balloond.model import DomainState, Explanation, Hold, JobKind, Reason
from balloond.policy.model import Amount
from balloond.units import format_size, format_sizes_apart

if TYPE_CHECKING:
    from balloond.core.classify import Claim

# Sizes repeat from tick to tick (a steady guest's size, floors, deadbands): cache their text.
sz = lru_cache(maxsize=8192)(format_size)


def text_of(why: str | Explanation) -> str:
    return why if isinstance(why, str) else why.text()


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
    if est.boosted is not None and est.demand is not None and est.boosted > est.demand:
        demand += f", boosted to {sz(est.boosted)} while short"
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


def want(claim: Claim, reason: Reason) -> str:
    """Why a claimant wants what it wants: its estimate, buffer, cooldown and bounds."""
    est, policy, wanted = claim.est, claim.policy, claim.want
    if est.demand is None:
        return "no data"
    if reason is Reason.GUEST_REQUEST and est.requested is not None:
        return f"guest requests {sz(est.requested)}"
    growing = wanted.size > claim.dom.current and wanted.cooling is None
    text = cause(est, policy.buffer, policy.pressure_target, growing)
    if wanted.cooling is not None:
        text += f"; kept up for {GROW_COOLDOWN:.0f} s after a grow ({wanted.cooling:.0f} s ago)"
    if wanted.clamp == "floor":
        text += f", raised to the floor {sz(claim.floor)}"
    elif wanted.clamp == "ceiling":
        text += f", capped at the ceiling {sz(claim.ceiling)}"
    return text + (f" ({est.note})" if est.note else "")


def contention(share: int, fair: int, wanted: int, weight: int) -> str:
    text = f"contention: {sz(share)} of the {sz(wanted)} wanted, by weight {weight}"
    return text if share == fair else text + f" (fair share {sz(fair)})"


def paying(share: int, fair: int, pays: int, weight: int) -> str:
    return (
        f"contention: gives {sz(pays)} at once to domains below their fair share (weight "
        f"{weight}, lowest weights first); its share {sz(share)}, fair share {sz(fair)}"
    )


def swap_guard(current: int, rate: float | None, pays: int = 0) -> str:
    swapping = f"swapping in {sz(int(rate or 0))}/s (swap guard)"
    if pays:
        return f"gives {sz(pays)} at once to domains below their fair share, no more: {swapping}"
    return f"kept at {sz(current)}: {swapping}"


def steady(claim: Claim, reason: Reason, computed: int) -> str:
    return (
        f"steady at {sz(claim.dom.current)}: {want(claim, reason)}; {sz(computed)} is within "
        f"the deadband {amount(claim.policy.deadband)} of the target {sz(claim.in_force)}"
    )


def moving(claim: Claim, reason: Reason) -> str:
    before, after = format_sizes_apart(claim.dom.current, claim.in_force)
    return f"moving {before} → {after} (issued earlier): {want(claim, reason)}"


def moved(
    claim: Claim,
    target: int,
    reason: Reason,
    prior: str | Explanation,
    limit: Amount | None,
    retried: bool,
) -> str:
    """Why a claimant moves to `target`; `reason` and `prior` are its reason and explanation
    before the rate limits (a move without usable data is named FLOOR or CEILING there)."""
    cur = claim.dom.current
    if reason is Reason.NO_DATA:
        bound = "floor" if cur < claim.floor else "ceiling"
        return move(cur, target, f"no usable data; to the {bound}")
    limited = f"; step limited to {amount(limit)}" if limit is not None else ""
    if retried:
        limited += "; retried after being stuck"
    if reason is Reason.CONTENTION:
        return move(cur, target, text_of(prior) + limited)
    return move(cur, target, want(claim, reason) + limited)


def partly_granted(current: int, target: int, granted: int, ask: int) -> str:
    return move(current, target, f"host can give only {sz(granted)} of {sz(ask)} now")


def waiting(current: int, wanted: int) -> str:
    return (
        f"waiting at {sz(current)}: wants {sz(wanted)} but the host has no memory to give "
        "above its reserve"
    )
