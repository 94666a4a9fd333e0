"""One migration: start it in a worker thread, poll its job statistics for progress, abort it
on Ctrl-C or on any failure here, and measure it at the end.

migrateToURI3 blocks until the migration ends, so the calling thread stays free to poll
`jobStats` and to receive KeyboardInterrupt; `abortJob` cancels a running migration and libvirt
resumes the guest on the source.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import libvirt

from balloond.backend.base import JobProgress, MigrationResult
from balloond.backend.libvirt_errors import translate
from balloond.backend.libvirt_stats import completed_figures, job_progress

log = logging.getLogger(__name__)


def migration_flags(*, live: bool, active: bool, persistent: bool) -> int:
    """Peer-to-peer (the source libvirtd talks to the destination's, as `virsh migrate
    --p2p`). A shut-off domain moves its definition only (offline migration). A persistent
    domain stays defined on the destination and leaves the source, as `xm migrate` did."""
    flags: int = libvirt.VIR_MIGRATE_PEER2PEER
    if not active:
        flags |= libvirt.VIR_MIGRATE_OFFLINE | libvirt.VIR_MIGRATE_PERSIST_DEST
        return flags
    if live:
        flags |= libvirt.VIR_MIGRATE_LIVE
    if persistent:
        flags |= libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    return flags


class _Worker(threading.Thread):
    def __init__(self, dom: Any, dest_uri: str, params: dict[str, Any], flags: int) -> None:
        super().__init__(name="balloond-migrate", daemon=True)
        self._args = (dest_uri, params, flags)
        self._dom = dom
        self.error: libvirt.libvirtError | None = None

    def run(self) -> None:
        try:
            self._dom.migrateToURI3(*self._args)
        except libvirt.libvirtError as exc:
            self.error = exc


def run_migration(
    dom: Any,
    name: str,
    dest_uri: str,
    *,
    call: Callable[[str], AbstractContextManager[None]],
    live: bool,
    max_downtime: float | None,
    progress: Callable[[JobProgress], None] | None,
    data_uri: str | None,
    poll_interval: float,
) -> MigrationResult:
    what = f"domain '{name}': migrating to '{dest_uri}'"
    with call(what):
        active = bool(dom.isActive())
        was_running = active and dom.info()[0] in _RUNNING
        flags = migration_flags(live=live, active=active, persistent=bool(dom.isPersistent()))
        uuid = str(dom.UUIDString())
    params: dict[str, Any] = {}
    if data_uri:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = data_uri
    downtime_ms = None if max_downtime is None or not active else max(1, int(max_downtime * 1000))
    downtime_set = downtime_ms is None or _set_downtime(dom, downtime_ms)
    started = time.monotonic()
    worker = _Worker(dom, dest_uri, params, flags)
    worker.start()
    last: JobProgress | None = None
    try:
        while worker.is_alive():
            worker.join(poll_interval)
            if not worker.is_alive():
                break
            if not downtime_set and downtime_ms is not None:
                downtime_set = _set_downtime(dom, downtime_ms)
            current = _progress(dom)
            if current is not None:
                last = current
                if progress is not None:
                    progress(current)
    except BaseException:
        _abort(dom, name, worker)
        raise
    if worker.error is not None:
        if was_running:
            _resume_if_paused(dom, name)
        raise translate(worker.error, what) from worker.error
    duration = time.monotonic() - started
    return _result(dom, uuid, dest_uri, duration, last)


_RUNNING = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED)


def _resume_if_paused(dom: Any, name: str) -> None:
    """A refused migration must leave the guest running where it was. libvirt's libxl
    driver pauses the domain before it asks the destination, and a migration to its own
    host, refused there, left the domU paused (seen in the Xen lab, tests/xen)."""
    try:
        if dom.info()[0] == libvirt.VIR_DOMAIN_PAUSED:
            log.warning("domain '%s': paused by the failed migration; resuming it", name)
            dom.resume()
    except libvirt.libvirtError as exc:
        log.warning("domain '%s': cannot resume it after the failed migration: %s", name, exc)


def _set_downtime(dom: Any, downtime_ms: int) -> bool:
    """QEMU accepts the limit only while the migration job exists on some versions."""
    try:
        dom.migrateSetMaxDowntime(downtime_ms, 0)
    except libvirt.libvirtError as exc:
        log.debug("max downtime not set yet: %s", exc)
        return False
    return True


def _progress(dom: Any) -> JobProgress | None:
    try:
        return job_progress(dom.jobStats())
    except libvirt.libvirtError:
        return None  # no job stats on this driver, or the job just ended


def _abort(dom: Any, name: str, worker: _Worker) -> None:
    log.warning("domain '%s': aborting its migration", name)
    try:
        dom.abortJob()
    except libvirt.libvirtError as exc:
        log.warning("domain '%s': abortJob failed: %s", name, exc)
    worker.join(60.0)  # libvirt resumes the guest on the source before returning


def _result(
    dom: Any, uuid: str, dest_uri: str, duration: float, last: JobProgress | None
) -> MigrationResult:
    stats = _completed_stats(dom) or _completed_stats_at(dest_uri, uuid)
    transferred, downtime, _elapsed = completed_figures(stats or {})
    if transferred is None:
        transferred = last.processed if last is not None else 0
    return MigrationResult(duration=duration, bytes_transferred=transferred, downtime=downtime)


def _completed_stats(dom: Any) -> dict[str, Any] | None:
    try:
        stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return None
    return dict(stats) if stats and stats.get("type") == libvirt.VIR_DOMAIN_JOB_COMPLETED else None


def _completed_stats_at(dest_uri: str, uuid: str) -> dict[str, Any] | None:
    """The destination keeps the completed incoming job (with the measured downtime) when
    the source domain is already gone."""
    try:
        conn = libvirt.open(dest_uri)
    except libvirt.libvirtError:
        return None
    try:
        return _completed_stats(conn.lookupByUUIDString(uuid))
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()
