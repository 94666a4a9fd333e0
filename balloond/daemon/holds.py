"""Holds: domains the daemon must leave alone.

Two places keep them. The backend's `HoldStore` (libvirt metadata, or the simulated host's
memory) is where `balloonctl` records its own, so they are seen with or without the daemon
and survive its restart. The daemon's own `HoldBook` keeps the holds its control socket was
asked for when the backend cannot store holds; it is saved in the state file.

A hold counts while it has not expired and, when it names a pid, while that process lives:
a command that dies does not pin its domain forever. The store judges the pids of its holds
(it knows on which host each command ran); the daemon judges those of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from balloond.model import DomainSnapshot, Hold
from balloond.pids import pid_alive


def hold_counts(hold: Hold, now: float) -> bool:
    """For the daemon's own holds, whose pids are always of this host."""
    return hold.active(now) and (hold.pid is None or pid_alive(hold.pid))


class HoldBook:
    """The daemon's own holds, by domain UUID. Thread-safe (control socket vs tick)."""

    def __init__(self, initial: Mapping[str, Hold], clock: Callable[[], float]) -> None:
        self._holds = dict(initial)
        self._clock = clock
        self._lock = threading.Lock()

    def own(self) -> dict[str, Hold]:
        """Own holds that still count (expired ones are dropped here, so they are not saved)."""
        now = self._clock()
        with self._lock:
            self._holds = {u: h for u, h in self._holds.items() if hold_counts(h, now)}
            return dict(self._holds)

    def put(self, uuid: str, hold: Hold) -> None:
        with self._lock:
            self._holds[uuid] = hold

    def release(self, uuid: str) -> bool:
        with self._lock:
            return self._holds.pop(uuid, None) is not None

    def active(self, backend_holds: Mapping[str, Hold], now: float) -> dict[str, Hold]:
        """Every hold that counts now. The backend's wins over our own for the same domain:
        it is the more recent, explicit operator request."""
        merged = {u: h for u, h in self.own().items() if hold_counts(h, now)}
        # The store has judged its holds' pids already, knowing which host each command ran
        # on: a `balloonctl --connect` on another host names a pid that means nothing here.
        merged.update({u: h for u, h in backend_holds.items() if h.active(now)})
        return merged


def within_maxmem(
    holds: Mapping[str, Hold], domains: Iterable[DomainSnapshot]
) -> tuple[dict[str, Hold], list[tuple[DomainSnapshot, Hold]]]:
    """The holds with every pinned size above its domain's maxmem brought down to maxmem,
    and the (domain, hold as written) pairs that were. A pin is promised to its domain
    whatever the domain does, so one the hypervisor can never grant (a state file or
    libvirt metadata edited by hand, an older balloond) would take the host's whole budget
    and have the other domains shrunk for "contention". The control socket refuses such a
    pin; holds read from elsewhere are brought within reach here, where maxmem is known."""
    maxmem = {dom.uuid: dom for dom in domains}
    kept: dict[str, Hold] = {}
    clamped: list[tuple[DomainSnapshot, Hold]] = []
    for uuid, hold in holds.items():
        dom = maxmem.get(uuid)
        if dom is not None and hold.target is not None and hold.target > dom.maxmem > 0:
            clamped.append((dom, hold))
            hold = replace(hold, target=dom.maxmem)
        kept[uuid] = hold
    return kept, clamped
