"""What a claimant wants: its demand plus headroom, as a balloon size, within its range.

- `buffered`: demand plus the policy buffer (a quarter of it on learned hot cache), plus the
  balloon the guest never sees (`balloond.core.overhead`): demand is in the guest's terms,
  targets are balloon sizes.
- `held_peak`: demand falls slowly (half-life PEAK_HALF_LIFE), so a guest is not shrunk into
  the trough of a workload that comes back a minute later; the held peak never grows one.
- the guest's own request (`self_adjust`) replaces the want.
- `clamped`: the policy's [floor, ceiling] bounds it, and names the bound when the bound
  itself moves the domain.
- next to the want, the *need*: the demand alone as a balloon size, within the same range;
  sharing by weight is fair about needs first (`balloond.core.fair`), headroom after.
- `cooled`: for GROW_COOLDOWN seconds after a grow for pressure or demand the want does not
  fall below what the domain has or was promised.
- without usable data (`blind`) the domain stays where it is, inside its range.
"""

from __future__ import annotations

from typing import NamedTuple

from balloond.core.estimate import Estimate
from balloond.core.need import half_life_factor
from balloond.model import Reason
from balloond.policy.model import Policy

# Learned hot cache gets this share of the policy buffer (it is a measured need already).
CACHE_BUFFER = 0.25
# Held demand decays toward lower readings with this half-life (seconds).
PEAK_HALF_LIFE = 60.0
# After a grow for pressure or demand, neither shrink the domain nor lower the grow in flight
# for this long (unless the host is below its reserve). Senpai backs off at once and probes
# down slowly; here a grow takes a stats period or two (2 s each) to reach the balloon and
# show in MemTotal, and readings taken meanwhile mix the old and new sizes (the lab's guest
# was shrunk back on such readings and OOM-killed). 30 s spans several ticks and stats periods
# and is short against the 60 s half-life of the held demand peak, which slows shrinks anyway.
GROW_COOLDOWN = 30.0


class Want(NamedTuple):
    """A claimant's want for this tick, and why."""

    size: int  # in [floor, ceiling]
    need: int  # the demand alone as a balloon size, in [low, size]: what fair shares are of
    low: int  # sharing never pushes the domain below this (its floor; its size without data)
    reason: Reason  # the direction of the want from the current size, or what bounds it
    clamp: str = ""  # "floor" or "ceiling" when the policy range bounds the want
    cooling: float | None = None  # seconds since a grow whose cooldown keeps the want up


def buffered(demand: int, hidden: int, overhead: int, buffer: float) -> int:
    """Demand plus the buffer, as a balloon size. The buffer is headroom for demand to grow
    into; hot cache learned from a stall is already a measured need (cache swells and shrinks
    with what it is given), so it gets only CACHE_BUFFER of the buffer."""
    cache = min(hidden, demand)
    headroom = (demand - cache) * (1.0 + buffer) + cache * (1.0 + buffer * CACHE_BUFFER)
    return int(headroom) + overhead


def held_peak(peak: int | None, peak_at: float | None, demand: int, now: float) -> int:
    """The demand peak carried to this tick: a new high at once, a fall only by half every
    PEAK_HALF_LIFE seconds."""
    if peak is None or peak_at is None or demand >= peak:
        return demand
    return demand + int((peak - demand) * half_life_factor(now - peak_at, PEAK_HALF_LIFE))


def direction(short: bool, size: int, current: int) -> Reason:
    """Why a domain moves toward `size` from `current`."""
    if size > current:
        return Reason.GROW_PRESSURE if short else Reason.GROW_DEMAND
    if size < current:
        return Reason.SHRINK_IDLE
    return Reason.STEADY


def clamped(
    size: int, reason: Reason, short: bool, current: int, floor: int, ceiling: int
) -> tuple[int, Reason, str]:
    """`size` within [floor, ceiling]: (size, reason, clamp). FLOOR / CEILING name the reason
    only when the bound itself moves the domain; a guest shrinking toward its floor from far
    above is still shrinking because it is idle."""
    if size < floor:
        return floor, Reason.FLOOR if current < floor else direction(short, floor, current), "floor"
    if size > ceiling:
        bound = Reason.CEILING if current > ceiling else direction(short, ceiling, current)
        return ceiling, bound, "ceiling"
    return size, reason, ""


def wanted(
    est: Estimate,
    policy: Policy,
    peak: int,
    current: int,
    in_force: int,
    floor: int,
    ceiling: int,
) -> Want:
    """The want of a domain with a demand estimate; `peak` is `held_peak` of this tick and
    `in_force` the target the hypervisor works toward now. Its need is its demand as a
    balloon size, no buffer, no boost: what the fair share is about."""
    assert est.demand is not None
    boosted = est.boosted if est.boosted is not None else est.demand
    size = buffered(boosted, est.hidden, est.overhead, policy.buffer)
    if peak > est.demand:
        # The held peak keeps a guest from being shrunk into the trough of a workload that
        # comes back; it never grows one (the lab's light guest, its workload OOM-killed, was
        # grown back on the peak of the workload that had died).
        kept = buffered(peak, est.hidden, est.overhead, policy.buffer)
        size = max(size, min(kept, max(in_force, current)))
    if est.requested is not None and policy.self_adjust:
        size, reason = est.requested, Reason.GUEST_REQUEST
    else:
        reason = direction(est.short, size, current)
    size, reason, clamp = clamped(size, reason, est.short, current, floor, ceiling)
    need = min(max(est.demand + est.overhead, floor), size)
    return Want(size=size, need=need, low=floor, reason=reason, clamp=clamp)


def blind(current: int, floor: int, ceiling: int) -> Want:
    """The want of a domain without usable data: never shrink on bad data; only the policy
    range itself may move the domain."""
    size = min(max(current, floor), ceiling)
    return Want(size=size, need=size, low=size, reason=Reason.NO_DATA)


def cooled(
    want: Want, grown_at: float | None, now: float, current: int, in_force: int, ceiling: int
) -> Want:
    """Within GROW_COOLDOWN of a grow (for pressure, demand, or a share under contention:
    `decide.GROWN`), the domain's own estimate may not take back what it has or was
    promised: its want is at least that. Only the want:
    when the host cannot cover every want, sharing by weight may still cut it (the real-VM
    lab's contention run starved the heavier guest when cooling guests were kept whole). The
    caller does not apply it while the host is below its reserve (it needs memory back) nor
    under the swap guard (which keeps the domain at its size anyway)."""
    if grown_at is None or not 0.0 <= now - grown_at < GROW_COOLDOWN:
        return want
    keep = min(max(current, in_force), ceiling)
    if want.size >= keep:
        return want
    reason = Reason.STEADY if want.reason is Reason.SHRINK_IDLE else want.reason
    return want._replace(size=keep, reason=reason, cooling=now - grown_at)
