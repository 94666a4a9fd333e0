"""`balloonctl balloon` (mem-set), `maxmem` (mem-max) and `release`."""

from __future__ import annotations

import time
from dataclasses import dataclass

from balloond.errors import Refused
from balloond.model import DomainSnapshot, Hold
from balloond.ops.context import OpsContext, find_domain
from balloond.ops.holding import busy_with_another_command, hold_of, working_hold
from balloond.units import format_size

BALLOON_OWNER = "balloonctl balloon"


@dataclass(frozen=True, slots=True)
class BalloonResult:
    name: str
    previous: int  # bytes
    target: int  # bytes
    floor: int
    hold: Hold


def check_balloon(dom: DomainSnapshot, size: int, floor: int, *, force: bool) -> None:
    """Refuse a target the domain cannot or should not take (pure: tested with tables)."""
    if size <= 0:
        raise Refused(f"domain '{dom.name}': target {format_size(size)} is not positive")
    if dom.job is not None:
        raise Refused(f"domain '{dom.name}': a {dom.job} job is running on it; try again after")
    if size > dom.maxmem:
        raise Refused(
            f"domain '{dom.name}': target {format_size(size)} is above its maxmem "
            f"{format_size(dom.maxmem)} (raise it first with 'balloonctl maxmem')"
        )
    if size < floor and not force:
        raise Refused(
            f"domain '{dom.name}': target {format_size(size)} is below its floor "
            f"{format_size(floor)} (use --force to go below it)"
        )


def balloon(
    ctx: OpsContext,
    name: str,
    size: int,
    *,
    force: bool = False,
    hold_for: float | None = None,
    now: float | None = None,
) -> BalloonResult:
    """Set the balloon target and pin it with a hold, for `hold_for` seconds or until
    released, so the daemon does not undo it at its next tick."""
    backend = ctx.backend
    dom = find_domain(backend, name)
    floor = ctx.floor_for(dom)
    check_balloon(dom, size, floor, force=force)
    previous = hold_of(backend, dom)
    busy_with_another_command(dom, previous, time.time())
    start = time.time() if now is None else now
    why = f"operator set {format_size(size)}" + (
        " below the floor (--force)" if size < floor else ""
    )
    hold = Hold(
        domain=dom.uuid,
        owner=BALLOON_OWNER,
        reason=why,
        until=None if hold_for is None else start + hold_for,
        target=size,
    )
    # The pin goes first: a daemon tick between the two calls must not undo the new size.
    backend.put_hold(name, hold)
    try:
        backend.set_target(name, size)
    except BaseException:
        _put_back(ctx, name, previous)
        raise
    return BalloonResult(name=name, previous=dom.current, target=size, floor=floor, hold=hold)


def _put_back(ctx: OpsContext, name: str, previous: Hold | None) -> None:
    """The size did not change: the domain's hold is what it was before (an earlier pin
    stays; no pin for a size that was never set)."""
    if previous is None:
        ctx.backend.clear_hold(name)
    else:
        ctx.backend.put_hold(name, previous)


def release(ctx: OpsContext, name: str) -> Hold | None:
    """Remove the hold on a domain (the daemon takes it back under its policy). Returns the
    hold that was released, if there was one."""
    backend = ctx.backend
    dom = find_domain(backend, name)
    hold = hold_of(backend, dom)
    backend.clear_hold(name)
    return hold


def target_of(ctx: OpsContext, dom: DomainSnapshot) -> int:
    """The domain's current target: an operator pin's size, else its balloon size now."""
    hold = hold_of(ctx.backend, dom)
    if hold is not None and hold.target is not None and hold.active(time.time()):
        return max(hold.target, dom.current)
    return dom.current


def set_maxmem(ctx: OpsContext, name: str, size: int) -> bool:
    """Set maxmem: live where the hypervisor allows it (Xen), else in the persistent config
    for the next boot. Returns whether it took effect live. Refuses below the target."""
    backend = ctx.backend
    dom = find_domain(backend, name)
    target = target_of(ctx, dom)
    if size < target:
        raise Refused(
            f"domain '{name}': maxmem {format_size(size)} is below its current target "
            f"{format_size(target)} (balloon it down first)"
        )
    with working_hold(backend, dom, "balloonctl maxmem", f"setting maxmem {format_size(size)}"):
        return backend.set_maxmem(name, size, live=True)
