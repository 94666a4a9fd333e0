"""Hypervisor backends. `base` holds the contract; `simulated` is the embedded default;
`libvirt` is imported lazily (libvirt-python is an optional extra)."""

from __future__ import annotations

from balloond.backend.base import Backend, DomainEvent, EventKind, MigrationResult, Operations

__all__ = ["Backend", "DomainEvent", "EventKind", "MigrationResult", "Operations", "open_backend"]


def open_backend(uri: str) -> Backend:
    """Open the backend for a URI: ``sim://...`` is the simulated host, anything else libvirt."""
    if uri.startswith("sim:"):
        from balloond.backend.simulated import open_simulated

        return open_simulated(uri)
    from balloond.backend.libvirt import LibvirtBackend

    return LibvirtBackend(uri)
