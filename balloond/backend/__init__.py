"""Hypervisor backends. `base` holds the contract; `simulated` is the embedded default;
`libvirt` is imported lazily (libvirt-python is an optional extra)."""

from __future__ import annotations

from balloond.backend.base import Backend, DomainEvent, EventKind, MigrationResult, Operations

__all__ = [
    "Backend",
    "DomainEvent",
    "EventKind",
    "MigrationResult",
    "Operations",
    "in_process",
    "open_backend",
    "same_host",
]


def in_process(uri: str) -> bool:
    """Whether the host a URI names lives inside the process that opens it: the simulated
    host (sim://) and libvirt's test driver (test:///). Two processes opening it get two
    hosts: a change one makes is invisible to the other."""
    return uri.startswith(("sim:", "test:"))


def same_host(uri: str, other: str) -> bool:
    """Whether two URIs name the same host (options such as `?speed=10` aside)."""
    return uri.split("?", 1)[0].rstrip("/") == other.split("?", 1)[0].rstrip("/")


def open_backend(uri: str) -> Backend:
    """Open the backend for a URI: ``sim://...`` is the simulated host, anything else libvirt."""
    if uri.startswith("sim:"):
        from balloond.backend.simulated import open_simulated

        return open_simulated(uri)
    from balloond.backend.libvirt import LibvirtBackend

    return LibvirtBackend(uri)
