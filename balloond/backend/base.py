"""The hypervisor backend contract.

Units: every size crossing this interface is an int of **bytes** (the libvirt backend converts
to and from KiB at its edge); every instant is epoch seconds. Domains are addressed by name,
as libvirt and `xl` do; snapshots carry the UUID for anything that must survive a rename or a
migration.

Errors: implementations raise only `balloond.errors.BackendError` subclasses:
`DomainNotFound` when the domain vanished, `ConnectionLost` when the hypervisor connection
is gone (the daemon reconnects with backoff), `NotSupported`, `OperationFailed`.

Capabilities: what only some backends (or report sources) offer is a small Protocol of its
own below the one it extends (`Operations`, `HoldStore`, `HoldLookup`, `DomainLookup`,
`StatsPeriod`, `Locality`; `SyncedSource`, `LimitSink`, `ReportPush`). Callers ask
`isinstance(thing, Capability)` and have a plain way without it; nobody probes with
`getattr`. tests/contract/ runs each against the simulated host and libvirt's test driver.

    capability      libvirt   simulated host   agent hub
    Operations      yes       yes
    HoldStore       yes       yes
    HoldLookup      yes       yes
    DomainLookup    yes       yes
    StatsPeriod     yes       no (its statistics are always on)
    Locality        yes       no (it works in this process's filesystem)
    ReportSource    no        yes              yes
    SyncedSource                               yes
    LimitSink                                  yes
    ReportPush                                 yes
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from balloond.model import DomainSnapshot, GuestReport, Hold, HostSnapshot


class EventKind(StrEnum):
    STARTED = "started"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    SAVED = "saved"
    RESTORED = "restored"
    MIGRATED = "migrated"  # left this host
    DEFINED = "defined"
    UNDEFINED = "undefined"
    CRASHED = "crashed"
    # A long job began on the domain (libvirt: a migration's first pass) / a job finished.
    JOB_STARTED = "job_started"
    JOB_COMPLETED = "job_completed"
    CONNECTION_LOST = "connection_lost"


@dataclass(frozen=True, slots=True)
class DomainEvent:
    kind: EventKind
    name: str
    uuid: str
    at: float


@runtime_checkable
class Backend(Protocol):
    """What the daemon needs from a hypervisor. Keep it this small."""

    @property
    def uri(self) -> str:
        """The URI this backend was opened with (shown to operators)."""
        ...

    def host(self) -> HostSnapshot:
        """Host memory: total, and what is still free to hand to guests (bytes)."""
        ...

    def domains(self) -> list[DomainSnapshot]:
        """Every active domain (running, paused, ... not shut off), with its current balloon
        size, maxmem, state, running job and balloon statistics. `report` is left None: guest
        reports come from a `ReportSource`."""
        ...

    def set_target(self, name: str, target: int) -> None:
        """Set the live balloon target of a running domain (bytes). Must not change maxmem."""
        ...

    def set_maxmem(self, name: str, size: int, *, live: bool) -> bool:
        """Set the domain's maximum memory (bytes). With `live`, try the running domain
        first; return True if it took effect live, False if only the persistent config
        changed (it applies at next boot)."""
        ...

    def watch(self, callback: Callable[[DomainEvent], None]) -> None:
        """Call `callback` (from any thread) on lifecycle events until `close`."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class DomainLookup(Protocol):
    """Reads one domain without reading the whole host (libvirt: a listing reads every
    domain's balloon statistics, one QEMU monitor round trip each)."""

    def domain(self, name: str) -> DomainSnapshot:
        """The domain's snapshot, as `domains()` gives it for an active one; libvirt also
        finds defined, shut-off domains. Raises `DomainNotFound`."""
        ...


@runtime_checkable
class StatsPeriod(Protocol):
    """Balloon statistics that stay off until asked for (libvirt with QEMU: virtio-balloon
    statistics need a polling period set on each domain)."""

    def ensure_stats_period(self, name: str, seconds: int) -> None:
        """Have the guest's balloon statistics refreshed every `seconds`."""
        ...


@runtime_checkable
class Locality(Protocol):
    """A backend that may run on another machine (libvirt over ssh or tcp). A backend
    without this capability works on this machine's files."""

    @property
    def is_local(self) -> bool:
        """Whether file paths (save images) mean the same to the backend and to us."""
        ...


@dataclass(frozen=True, slots=True)
class MigrationResult:
    duration: float  # seconds, start to end
    bytes_transferred: int
    downtime: float | None  # seconds the guest was paused, when the hypervisor measured it


@dataclass(frozen=True, slots=True)
class JobProgress:
    processed: int  # bytes
    remaining: int  # bytes
    total: int  # bytes
    dirty_rate: int  # bytes per second
    elapsed: float  # seconds


@runtime_checkable
class Operations(Protocol):
    """The explicit operator operations (balloonctl save/restore/migrate). Separate from
    `Backend` because the daemon never calls them."""

    def save(self, name: str, path: str) -> None:
        """Stop the domain and write its state to `path` (which must not exist)."""
        ...

    def restore(self, path: str) -> str:
        """Restore a saved domain, running; return its name."""
        ...

    def saved_image_memory(self, path: str) -> tuple[str, int]:
        """Name and memory (bytes) recorded in a saved image, without restoring it."""
        ...

    def migrate(
        self,
        name: str,
        dest_uri: str,
        *,
        live: bool,
        max_downtime: float | None = None,
        progress: Callable[[JobProgress], None] | None = None,
    ) -> MigrationResult:
        """Move the domain to `dest_uri`. On failure or KeyboardInterrupt the migration is
        aborted and the domain keeps running here."""
        ...


@runtime_checkable
class ReportSource(Protocol):
    """Where sanitised guest agent reports come from (the agent channel hub, or the
    simulated host's own agents). Keyed by domain UUID, newest report only."""

    def reports(self) -> Mapping[str, GuestReport]: ...


@runtime_checkable
class SyncedSource(Protocol):
    """A report source that needs the current domain list (the agent channel hub)."""

    def sync(self, domains: Sequence[DomainSnapshot]) -> None: ...


@runtime_checkable
class HostIdentity(Protocol):
    """A backend that can name the host it manages (libvirt's host UUID, else its host
    name), so that an operation aimed at another host can tell when it would land on this
    one."""

    def host_identity(self) -> str | None: ...


@runtime_checkable
class LimitSink(Protocol):
    """A report source that can pass each guest agent its floor and ceiling (bytes)."""

    def send_limits(self, uuid: str, floor: int, ceiling: int) -> None: ...


OnReport = Callable[[str, GuestReport], None]


@runtime_checkable
class ReportPush(Protocol):
    """A report source that also tells `on_report(uuid, report)` of each report it accepts
    (the agent hub: on its own thread, outside its lock, so the callback must be quick), so
    that a guest reporting pressure is looked at now, not at the next tick. The callback is
    set after the source is built: the daemon that listens needs the source first."""

    on_report: OnReport | None


@runtime_checkable
class HoldStore(Protocol):
    """Holds kept with the domain itself (libvirt metadata; in memory for the simulated host),
    so `balloonctl` and the daemon see the same holds, with or without the daemon running,
    and across daemon restarts. Keyed by domain UUID."""

    def holds(self) -> dict[str, Hold]:
        """Every hold recorded on an active domain (expired ones included; callers filter)."""
        ...

    def put_hold(self, name: str, hold: Hold) -> None: ...

    def clear_hold(self, name: str) -> None: ...


@runtime_checkable
class HoldLookup(Protocol):
    """A hold store that reads one domain's hold by name, shut-off domains included (where
    the store keeps them: libvirt does)."""

    def get_hold(self, name: str) -> Hold | None:
        """The domain's hold (an expired one included), or None. Raises `DomainNotFound`."""
        ...
