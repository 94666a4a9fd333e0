"""libvirt's event loop (one per process) and the translation of lifecycle events.

libvirt delivers domain events and keepalives only while an event implementation runs, and
the implementation must be registered before the first connection is opened. One daemon
thread runs `virEventRunDefaultImpl` for the life of the process.
"""

from __future__ import annotations

import logging
import threading

import libvirt

from balloond.backend.base import EventKind

log = logging.getLogger(__name__)

_lock = threading.Lock()
_started = False


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and start its thread, once."""
    global _started
    with _lock:
        if _started:
            return
        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run, name="libvirt-events", daemon=True)
        thread.start()
        _started = True


def _run() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError:  # pragma: no cover - libvirt's own loop failing
            log.exception("libvirt event loop iteration failed")


_E = libvirt
# (event, detail) pairs that need a more specific kind than the event alone.
_DETAILED: dict[tuple[int, int], EventKind] = {
    (_E.VIR_DOMAIN_EVENT_STARTED, _E.VIR_DOMAIN_EVENT_STARTED_RESTORED): EventKind.RESTORED,
    (_E.VIR_DOMAIN_EVENT_STOPPED, _E.VIR_DOMAIN_EVENT_STOPPED_SAVED): EventKind.SAVED,
    (_E.VIR_DOMAIN_EVENT_STOPPED, _E.VIR_DOMAIN_EVENT_STOPPED_MIGRATED): EventKind.MIGRATED,
    (_E.VIR_DOMAIN_EVENT_STOPPED, _E.VIR_DOMAIN_EVENT_STOPPED_CRASHED): EventKind.CRASHED,
}
_BY_EVENT: dict[int, EventKind] = {
    _E.VIR_DOMAIN_EVENT_DEFINED: EventKind.DEFINED,
    _E.VIR_DOMAIN_EVENT_UNDEFINED: EventKind.UNDEFINED,
    _E.VIR_DOMAIN_EVENT_STARTED: EventKind.STARTED,
    _E.VIR_DOMAIN_EVENT_SUSPENDED: EventKind.SUSPENDED,
    _E.VIR_DOMAIN_EVENT_PMSUSPENDED: EventKind.SUSPENDED,
    _E.VIR_DOMAIN_EVENT_RESUMED: EventKind.RESUMED,
    _E.VIR_DOMAIN_EVENT_STOPPED: EventKind.STOPPED,
    _E.VIR_DOMAIN_EVENT_CRASHED: EventKind.CRASHED,
}


def lifecycle_kind(event: int, detail: int) -> EventKind | None:
    """Our event kind for a libvirt lifecycle (event, detail); None for ones we ignore
    (SHUTDOWN: the guest began shutting down; STOPPED follows)."""
    return _DETAILED.get((event, detail)) or _BY_EVENT.get(event)
