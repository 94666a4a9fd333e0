"""The hypervisor backend contract.

Units: every size crossing this interface is an int of **bytes** (the libvirt backend converts
to and from KiB at its edge); every instant is epoch seconds. Domains are addressed by name,
as libvirt and `xl` do; snapshots carry the UUID for anything that must survive a rename or a
migration.

Errors: implementations raise only `balloond.errors.BackendError` subclasses:
`DomainNotFound` when the domain vanished, `ConnectionLost` when the hypervisor connection
is gone (the daemon reconnects with backoff), `NotSupported`, `OperationFailed`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
class HoldStore(Protocol):
    """Holds kept with the domain itself (libvirt metadata; in memory for the simulated host),
    so `balloonctl` and the daemon see the same holds, with or without the daemon running,
    and across daemon restarts. Keyed by domain UUID."""

    def holds(self) -> dict[str, Hold]:
        """Every hold recorded on an active domain (expired ones included; callers filter)."""
        ...

    def put_hold(self, name: str, hold: Hold) -> None: ...

    def clear_hold(self, name: str) -> None: ...
