"""Small pure helpers of the libvirt backend: event kinds, migration flags, error mapping."""

from __future__ import annotations

import contextlib

import pytest

libvirt = pytest.importorskip("libvirt")

from balloond.backend.base import EventKind  # noqa: E402
from balloond.backend.libvirt import LibvirtBackend  # noqa: E402
from balloond.backend.libvirt_errors import translate  # noqa: E402
from balloond.backend.libvirt_events import lifecycle_kind  # noqa: E402
from balloond.backend.libvirt_migrate import migration_flags, run_migration  # noqa: E402
from balloond.errors import (  # noqa: E402
    BalloondError,
    ConnectionLost,
    DomainNotFound,
    NotSupported,
    OperationFailed,
)

L = libvirt


@pytest.mark.parametrize(
    ("event", "detail", "kind"),
    [
        (L.VIR_DOMAIN_EVENT_STARTED, L.VIR_DOMAIN_EVENT_STARTED_BOOTED, EventKind.STARTED),
        (L.VIR_DOMAIN_EVENT_STARTED, L.VIR_DOMAIN_EVENT_STARTED_MIGRATED, EventKind.STARTED),
        (L.VIR_DOMAIN_EVENT_STARTED, L.VIR_DOMAIN_EVENT_STARTED_RESTORED, EventKind.RESTORED),
        (L.VIR_DOMAIN_EVENT_STOPPED, L.VIR_DOMAIN_EVENT_STOPPED_SAVED, EventKind.SAVED),
        (L.VIR_DOMAIN_EVENT_STOPPED, L.VIR_DOMAIN_EVENT_STOPPED_MIGRATED, EventKind.MIGRATED),
        (L.VIR_DOMAIN_EVENT_STOPPED, L.VIR_DOMAIN_EVENT_STOPPED_CRASHED, EventKind.CRASHED),
        (L.VIR_DOMAIN_EVENT_STOPPED, L.VIR_DOMAIN_EVENT_STOPPED_DESTROYED, EventKind.STOPPED),
        (L.VIR_DOMAIN_EVENT_SUSPENDED, 0, EventKind.SUSPENDED),
        (L.VIR_DOMAIN_EVENT_PMSUSPENDED, 0, EventKind.SUSPENDED),
        (L.VIR_DOMAIN_EVENT_RESUMED, 0, EventKind.RESUMED),
        (L.VIR_DOMAIN_EVENT_DEFINED, 0, EventKind.DEFINED),
        (L.VIR_DOMAIN_EVENT_UNDEFINED, 0, EventKind.UNDEFINED),
        (L.VIR_DOMAIN_EVENT_CRASHED, 0, EventKind.CRASHED),
        (L.VIR_DOMAIN_EVENT_SHUTDOWN, 0, None),  # STOPPED follows
        (99, 0, None),
    ],
)
def test_lifecycle_kinds(event: int, detail: int, kind: EventKind | None) -> None:
    assert lifecycle_kind(event, detail) == kind


def test_migration_flags() -> None:
    p2p, live = L.VIR_MIGRATE_PEER2PEER, L.VIR_MIGRATE_LIVE
    persist = L.VIR_MIGRATE_PERSIST_DEST | L.VIR_MIGRATE_UNDEFINE_SOURCE
    assert migration_flags(live=True, active=True, persistent=False) == p2p | live
    assert migration_flags(live=False, active=True, persistent=False) == p2p
    assert migration_flags(live=True, active=True, persistent=True) == p2p | live | persist
    offline = migration_flags(live=True, active=False, persistent=True)
    assert offline & L.VIR_MIGRATE_OFFLINE and not offline & live


def _error(code: int, domain: int = L.VIR_FROM_QEMU) -> libvirt.libvirtError:
    exc = libvirt.libvirtError("boom")
    exc.err = (code, domain, "the message", 2, None, None, None, 0, 0)
    return exc


@pytest.mark.parametrize(
    ("code", "domain", "kind"),
    [
        (L.VIR_ERR_NO_DOMAIN, L.VIR_FROM_QEMU, DomainNotFound),
        (L.VIR_ERR_INVALID_DOMAIN, L.VIR_FROM_DOMAIN, DomainNotFound),
        (L.VIR_ERR_INVALID_CONN, L.VIR_FROM_NONE, ConnectionLost),
        (L.VIR_ERR_SYSTEM_ERROR, L.VIR_FROM_RPC, ConnectionLost),
        (L.VIR_ERR_RPC, L.VIR_FROM_REMOTE, ConnectionLost),
        (L.VIR_ERR_NO_SUPPORT, L.VIR_FROM_QEMU, NotSupported),
        (L.VIR_ERR_ARGUMENT_UNSUPPORTED, L.VIR_FROM_QEMU, NotSupported),
        (L.VIR_ERR_OPERATION_INVALID, L.VIR_FROM_QEMU, OperationFailed),
        (L.VIR_ERR_SYSTEM_ERROR, L.VIR_FROM_QEMU, OperationFailed),  # e.g. a file error
    ],
)
def test_error_translation(code: int, domain: int, kind: type[Exception]) -> None:
    translated = translate(_error(code, domain), "domain 'web1': doing it")
    assert type(translated) is kind
    assert str(translated) == "domain 'web1': doing it: the message"


def test_an_ordinary_error_on_a_dead_connection_is_connection_lost() -> None:
    translated = translate(_error(L.VIR_ERR_INTERNAL_ERROR), "x", alive=lambda: False)
    assert isinstance(translated, ConnectionLost)


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("test:///default", True),
        ("qemu+ssh://node2/system", False),
        ("qemu+tcp://127.0.0.1:16510/system", False),
        ("xen:///", True),
    ],
)
def test_is_local(uri: str, local: bool) -> None:
    backend = LibvirtBackend.__new__(LibvirtBackend)  # no connection needed for the URI rule
    backend._uri = uri
    assert backend.is_local is local


class _PausingDomain:
    """A domain whose migration fails after the driver paused it (libvirt's libxl driver
    did so on a migration to its own host, in the Xen lab)."""

    def __init__(self) -> None:
        self.state = libvirt.VIR_DOMAIN_RUNNING

    def isActive(self) -> bool:
        return True

    def isPersistent(self) -> bool:
        return False

    def UUIDString(self) -> str:
        return "00000000-0000-4000-8000-000000000001"

    def info(self) -> list[int]:
        return [self.state, 524288, 524288, 1, 0]

    def migrateToURI3(self, *_args: object) -> None:
        self.state = libvirt.VIR_DOMAIN_PAUSED
        raise libvirt.libvirtError("Attempt to migrate guest to the same host")

    def jobStats(self, *_args: object) -> dict[str, object]:
        return {}

    def resume(self) -> None:
        self.state = libvirt.VIR_DOMAIN_RUNNING


def test_a_failed_migration_leaves_the_guest_running() -> None:
    dom = _PausingDomain()
    with pytest.raises(BalloondError):
        run_migration(
            dom,
            "g",
            "xen+tcp://127.0.0.1/system",
            call=lambda _what: contextlib.nullcontext(),
            live=True,
            max_downtime=None,
            progress=None,
            data_uri=None,
            poll_interval=0.01,
        )
    assert dom.state == libvirt.VIR_DOMAIN_RUNNING
