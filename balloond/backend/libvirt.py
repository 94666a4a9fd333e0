"""The libvirt backend: any libvirt URI (qemu:///system, xen:///system, test:///default, ...).

The only module (with its `libvirt_*` helpers) that imports `libvirt`. Units: bytes in and
out, KiB to libvirt. Every libvirt error is translated in `libvirt_errors.translated`.

Cost of one `domains()` call: one list, then per domain info + memoryStats (+ jobStats where
the driver has it). Facts that only change when the domain is redefined (tags, agent channel,
the persistent maxmem) come from the domain XML, cached by UUID and refreshed on lifecycle and
metadata events, so a 1,000-domain tick is not 1,000 XML dumps.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

import libvirt

from balloond.backend.base import DomainEvent, EventKind
from balloond.backend.libvirt_errors import (
    error_code,
    register_quiet_error_handler,
    translated,
)
from balloond.backend.libvirt_events import ensure_event_loop, lifecycle_kind
from balloond.backend.libvirt_holds import LibvirtHoldsMixin
from balloond.backend.libvirt_ops import LibvirtOperationsMixin
from balloond.backend.libvirt_stats import job_kind, job_kind_from_info, memory_stats
from balloond.backend.libvirt_xml import (
    DomainXmlFacts,
    capabilities_host_uuid,
    parse_domain_xml,
)
from balloond.errors import (
    ConnectionLost,
    DomainNotFound,
    NotSupported,
    OperationFailed,
)
from balloond.model import DomainSnapshot, DomainState, HostSnapshot
from balloond.units import KiB, MiB, bytes_to_kib, kib_to_bytes

log = logging.getLogger(__name__)

_STATES: dict[int, DomainState] = {
    libvirt.VIR_DOMAIN_NOSTATE: DomainState.UNKNOWN,
    libvirt.VIR_DOMAIN_RUNNING: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: DomainState.BLOCKED,
    libvirt.VIR_DOMAIN_PAUSED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: DomainState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: DomainState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: DomainState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: DomainState.PMSUSPENDED,
}

# Read the domains of a host with this many threads once it has PARALLEL_FROM domains.
DEFAULT_WORKERS = 8
PARALLEL_FROM = 16

_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


class LibvirtBackend(LibvirtHoldsMixin, LibvirtOperationsMixin):
    """Backend, Operations and HoldStore over one libvirt connection."""

    def __init__(self, uri: str) -> None:
        register_quiet_error_handler()
        ensure_event_loop()  # must precede open() for events and keepalive to work
        self._uri = uri
        self._closed = False
        try:
            self._conn: Any = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise ConnectionLost(f"cannot connect to '{uri}': {exc}") from exc
        if self._conn is None:  # old bindings returned None instead of raising
            raise ConnectionLost(f"cannot connect to '{uri}'")
        with self._call("reading the hypervisor type"):
            self._hypervisor = str(self._conn.getType()).lower()
        self._hostname = socket.gethostname()
        self._lock = threading.Lock()
        self._facts: dict[str, tuple[int, DomainXmlFacts, int | None]] = {}
        self._job_source: str | None = "stats"  # then "info", then None (no job API)
        self._callbacks: list[Callable[[DomainEvent], None]] = []
        self._event_ids: list[int] = []
        self._close_registered = False
        # With metadata events, a hold (domain metadata) changes only with an event that drops
        # the cached XML facts: holds() reads them from there, not one RPC per domain per tick.
        self._metadata_events = False
        self.workers = DEFAULT_WORKERS
        self._executor: ThreadPoolExecutor | None = None

    # --- plumbing -------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def hypervisor(self) -> str:
        return self._hypervisor

    @property
    def is_local(self) -> bool:
        """Whether libvirtd runs on this machine (so file paths mean the same to both)."""
        return urlsplit(self._uri).hostname in (None, "", "localhost")

    def _alive(self) -> bool:
        return not self._closed and bool(self._conn.isAlive())

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        if self._closed:
            raise ConnectionLost(f"{what}: the connection to '{self._uri}' is closed")
        with translated(what, self._alive):
            yield

    def _lookup(self, name: str) -> Any:
        with self._call(f"domain '{name}'"):
            return self._conn.lookupByName(name)

    # --- Backend --------------------------------------------------------------------------

    def host(self) -> HostSnapshot:
        with self._call(f"host memory of '{self._uri}'"):
            total = int(self._conn.getInfo()[1]) * MiB
            if self._hypervisor == "xen":
                return HostSnapshot(total=total, free=int(self._conn.getFreeMemory()))
            try:
                stats = self._conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
            except libvirt.libvirtError as exc:
                if error_code(exc) != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
                return HostSnapshot(total=total, free=int(self._conn.getFreeMemory()))
        # Page cache and buffers are given back by the host kernel on demand.
        free_kib = sum(int(stats.get(key, 0)) for key in ("free", "buffers", "cached"))
        return HostSnapshot(
            total=kib_to_bytes(stats.get("total", total // KiB)), free=free_kib * KiB
        )

    def host_identity(self) -> str | None:
        """'uuid:…' from libvirt's capabilities, else 'host:NAME' for a driver that puts no
        host UUID there. None for the test driver: its "hosts" are files on one machine."""
        with self._call(f"identity of the host of '{self._uri}'"):
            uuid = capabilities_host_uuid(str(self._conn.getCapabilities()))
            if uuid:
                return f"uuid:{uuid}"
            if self._hypervisor == "test":
                return None
            return f"host:{self._conn.getHostname()}"

    def domains(self) -> list[DomainSnapshot]:
        with self._call(f"listing domains on '{self._uri}'"):
            doms = self._conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        found = self._for_each(self._snapshot_or_none, doms)
        return [snapshot for snapshot in found if snapshot is not None]

    def _for_each(self, func: Callable[[Any], Any], doms: list[Any]) -> list[Any]:
        """`func` over `doms` in order; in parallel threads on a large host."""
        if len(doms) < PARALLEL_FROM or self.workers <= 1:
            return [func(dom) for dom in doms]
        return list(self._pool().map(func, doms))

    def _snapshot_or_none(self, dom: Any) -> DomainSnapshot | None:
        try:
            return self._snapshot(dom)
        except DomainNotFound:
            return None  # it vanished between list and read: it is no longer active

    def _pool(self) -> ThreadPoolExecutor:
        """memoryStats waits for each guest's QEMU monitor (about 3 ms per domain under TCG
        here), so a large host is read by a few threads at once; libvirtd serves them in
        parallel and libvirt-python releases the GIL during calls."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, "balloond-libvirt")
            return self._executor

    def domain(self, name: str) -> DomainSnapshot:
        """One domain's snapshot, active or not (for balloonctl)."""
        return self._snapshot(self._lookup(name))

    def _snapshot(self, dom: Any) -> DomainSnapshot:
        name = str(dom.name())
        with self._call(f"domain '{name}'"):
            state, max_kib, mem_kib, vcpus, cpu_ns = dom.info()
            dom_id = int(dom.ID())
            facts, persistent_maxmem = self._xml_facts(dom, dom_id)
            active = state != libvirt.VIR_DOMAIN_SHUTOFF
            stats = self._stats(dom) if active else None
            job = self._job(dom) if active else None
        maxmem = kib_to_bytes(max_kib)
        return DomainSnapshot(
            name=name,
            uuid=str(dom.UUIDString()),
            current=kib_to_bytes(mem_kib),
            maxmem=maxmem,
            state=_STATES.get(state, DomainState.UNKNOWN),
            id=dom_id if dom_id >= 0 else None,
            job=job,
            vcpus=int(vcpus),
            cpu_time=cpu_ns / 1e9,
            stats=stats,
            tags=facts.tags,
            persistent_maxmem=persistent_maxmem if persistent_maxmem != maxmem else None,
            channel=facts.channel,
            hypervisor=self._hypervisor,
        )

    def _stats(self, dom: Any) -> Any:
        try:
            return memory_stats(dom.memoryStats(), self._hypervisor)
        except libvirt.libvirtError as exc:
            if error_code(exc) in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_CONN):
                raise
            return None  # no balloon driver, or the domain is not running: "no data"

    def _job(self, dom: Any) -> Any:
        """A job on the domain, whoever started it (a `virsh migrate` by hand too): the
        daemon leaves such a domain alone. jobStats where the driver has it, else the older
        jobInfo (no operation kind: OTHER); the test driver has neither (never any job)."""
        source = self._job_source
        if source is None:
            return None
        try:
            if source == "stats":
                return job_kind(dom.jobStats())
            return job_kind_from_info(dom.jobInfo())
        except libvirt.libvirtError as exc:
            if error_code(exc) == libvirt.VIR_ERR_NO_SUPPORT:
                self._job_source = "info" if source == "stats" else None
                return self._job(dom)
            if error_code(exc) in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_CONN):
                raise  # translated by the caller's _call
            return None

    def _xml_facts(self, dom: Any, dom_id: int) -> tuple[DomainXmlFacts, int | None]:
        uuid = str(dom.UUIDString())
        with self._lock:
            cached = self._facts.get(uuid)
        if cached is not None and cached[0] == dom_id:  # a restart gives a new id
            return cached[1], cached[2]
        facts = parse_domain_xml(dom.XMLDesc(0))
        persistent_maxmem = None
        if dom.isPersistent():
            persistent_maxmem = parse_domain_xml(
                dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            ).maxmem
        with self._lock:
            self._facts[uuid] = (dom_id, facts, persistent_maxmem)
        return facts, persistent_maxmem

    def _forget(self, uuid: str) -> None:
        with self._lock:
            self._facts.pop(uuid, None)

    def set_target(self, name: str, target: int) -> None:
        if target <= 0:
            raise OperationFailed(f"domain '{name}': target {target} bytes is not positive")
        dom = self._lookup(name)
        with self._call(f"domain '{name}': setting the balloon target to {target // MiB} MiB"):
            dom.setMemoryFlags(bytes_to_kib(target), _LIVE)

    def set_maxmem(self, name: str, size: int, *, live: bool) -> bool:
        if size <= 0:
            raise OperationFailed(f"domain '{name}': maxmem {size} bytes is not positive")
        dom = self._lookup(name)
        what = f"domain '{name}': setting maxmem to {size // MiB} MiB"
        kib = bytes_to_kib(size)
        self._forget(str(dom.UUIDString()))
        if live and self._is_active(dom, name):
            try:
                with self._call(what):
                    dom.setMemoryFlags(kib, _LIVE | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
            except (NotSupported, OperationFailed) as exc:
                # QEMU cannot change a running guest's maximum; Xen can.
                log.info("%s: live change refused (%s); changing the config", what, exc)
            else:
                # Live took effect: a failing config write is an error of its own, never a
                # reason to report the change as config-only.
                with self._call(f"{what} in the persistent config"):
                    if dom.isPersistent():
                        dom.setMemoryFlags(kib, _CONFIG | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
                return True
        with self._call(what):
            dom.setMemoryFlags(kib, _CONFIG | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
        return False

    def _is_active(self, dom: Any, name: str) -> bool:
        with self._call(f"domain '{name}'"):
            return bool(dom.isActive())

    def ensure_stats_period(self, name: str, seconds: int) -> None:
        """Turn on the guest's balloon statistics (they are off unless a period is set)."""
        dom = self._lookup(name)
        with self._call(f"domain '{name}': setting the stats period to {seconds} s"):
            dom.setMemoryStatsPeriod(int(seconds), _LIVE)

    # --- events ---------------------------------------------------------------------------

    def watch(self, callback: Callable[[DomainEvent], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)
            first = len(self._callbacks) == 1
        if not first:
            return
        with self._call(f"subscribing to events of '{self._uri}'"):
            self._event_ids.append(
                self._conn.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
                )
            )
            self._conn.registerCloseCallback(self._on_close, None)
            self._close_registered = True
        try:  # tags may change without a lifecycle event (virsh metadata)
            self._event_ids.append(
                self._conn.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, self._on_metadata, None
                )
            )
            self._metadata_events = True
        except libvirt.libvirtError as exc:
            log.debug("no metadata change events on %s: %s", self._uri, exc)
        # libvirt has no "job started" event; a migration's first pass is the earliest sign of
        # one, hand-started (virsh migrate) or not.
        for event_id, handler in (
            (libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, self._on_migration_pass),
            (libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, self._on_job_completed),
        ):
            try:
                registered = self._conn.domainEventRegisterAny(None, event_id, handler, None)
                self._event_ids.append(registered)
            except libvirt.libvirtError as exc:
                log.debug("no job events (%s) on %s: %s", event_id, self._uri, exc)

    def _emit(self, event: DomainEvent) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:  # a broken observer must not kill libvirt's event thread
                log.exception("event callback failed for %s", event)

    def _on_lifecycle(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        uuid = str(dom.UUIDString())
        self._forget(uuid)
        kind = lifecycle_kind(event, detail)
        if kind is not None:
            self._emit(DomainEvent(kind=kind, name=str(dom.name()), uuid=uuid, at=time.time()))

    def _on_migration_pass(self, _conn: Any, dom: Any, iteration: int, _opaque: Any) -> None:
        if iteration == 1:  # later passes follow every few hundred ms: one wake is enough
            self._emit_for(EventKind.JOB_STARTED, dom)

    def _on_job_completed(self, _conn: Any, dom: Any, _params: Any, _opaque: Any) -> None:
        self._emit_for(EventKind.JOB_COMPLETED, dom)

    def _emit_for(self, kind: EventKind, dom: Any) -> None:
        self._emit(
            DomainEvent(kind=kind, name=str(dom.name()), uuid=str(dom.UUIDString()), at=time.time())
        )

    def _on_metadata(self, _conn: Any, dom: Any, *_args: Any) -> None:
        self._forget(str(dom.UUIDString()))

    def _on_close(self, _conn: Any, reason: int, _opaque: Any) -> None:
        log.warning("connection to %s closed (reason %s)", self._uri, reason)
        self._emit(DomainEvent(kind=EventKind.CONNECTION_LOST, name="", uuid="", at=time.time()))

    def close(self) -> None:
        if self._closed:
            return
        for event_id in self._event_ids:
            with suppress(libvirt.libvirtError):  # the connection may already be gone
                self._conn.domainEventDeregisterAny(event_id)
        if self._close_registered:
            with suppress(libvirt.libvirtError):
                self._conn.unregisterCloseCallback()
        self._event_ids.clear()
        self._callbacks.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._closed = True
        with suppress(libvirt.libvirtError):
            self._conn.close()

    def __enter__(self) -> LibvirtBackend:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
