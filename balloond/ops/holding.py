"""The hold a command keeps on a domain while it works on it.

The hold names the command's pid: if the command dies, the hold dies with it (the daemon and
the libvirt backend both check the pid). A hold the domain already had (an operator's
`balloonctl balloon` pin) is left in place rather than replaced and lost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from balloond.backend.base import HoldLookup, HoldStore
from balloond.errors import BackendError, DomainNotFound, Refused
from balloond.model import DomainSnapshot, Hold

log = logging.getLogger(__name__)

# A command hold also carries an end, in case its pid cannot be checked (another host).
COMMAND_HOLD_LIMIT = 6 * 3600.0


def command_hold(dom: DomainSnapshot, owner: str, reason: str, now: float | None = None) -> Hold:
    start = time.time() if now is None else now
    return Hold(
        domain=dom.uuid,
        owner=owner,
        reason=reason,
        until=start + COMMAND_HOLD_LIMIT,
        pid=os.getpid(),
    )


def hold_of(store: HoldStore, dom: DomainSnapshot) -> Hold | None:
    """The hold on one domain, shut-off ones too (`holds()` lists active domains only)."""
    if isinstance(store, HoldLookup):
        try:
            return store.get_hold(dom.name)
        except DomainNotFound:
            return None
    return store.holds().get(dom.uuid)


def busy_with_another_command(dom: DomainSnapshot, hold: Hold | None, now: float) -> None:
    """Refuse to work on a domain another live balloonctl command is working on (a save
    half done, a migration under way): its end would clear whatever this command records.
    A dead command's hold has expired already (the backend checks its pid)."""
    if hold is None or hold.pid is None or hold.pid == os.getpid() or not hold.active(now):
        return
    raise Refused(
        f"domain '{dom.name}': {hold.owner} (pid {hold.pid}) is working on it: "
        f"{hold.reason}; try again when it is done (if it is not running any more: "
        f"'balloonctl release {dom.name}')"
    )


def _previous(store: HoldStore, dom: DomainSnapshot) -> Hold | None:
    hold = hold_of(store, dom)
    now = time.time()
    busy_with_another_command(dom, hold, now)
    if hold is None or hold.pid is not None or not hold.active(now):
        return None  # only a still-valid operator pin is worth putting back
    return hold


@contextmanager
def working_hold(store: HoldStore, dom: DomainSnapshot, owner: str, reason: str) -> Iterator[Hold]:
    """Hold `dom` for the duration of the block, then clear the hold. A domain an operator
    already pinned is held already: the pin stays as it is (and travels with the domain
    into a saved image or to a migration's destination)."""
    previous = _previous(store, dom)
    if previous is not None:
        yield previous
        return
    hold = command_hold(dom, owner, reason)
    store.put_hold(dom.name, hold)
    try:
        yield hold
    finally:
        _finish(store, dom)


def _finish(store: HoldStore, dom: DomainSnapshot) -> None:
    """If the domain is gone by now (saved, migrated away) there is nothing left to clear."""
    try:
        store.clear_hold(dom.name)
    except DomainNotFound:
        pass
    except BackendError as exc:  # the command's own outcome matters more; the pid expires it
        log.warning("domain '%s': could not remove the command's hold: %s", dom.name, exc)


def clear_command_hold(store: HoldStore, name: str, uuid: str) -> None:
    """Remove a command hold that travelled with the domain (inside a saved image or a
    migration stream); leave an operator's pin (no pid) in place."""
    hold = store.holds().get(uuid)
    if hold is not None and hold.pid is not None:
        try:
            store.clear_hold(name)
        except BackendError as exc:
            log.warning("domain '%s': could not remove a stale command hold: %s", name, exc)
