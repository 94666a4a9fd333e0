"""Shared by the contract suites (tests/contract): one domain every contract host runs, and a
backend stripped down to the bare contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from balloond.backend.base import DomainEvent
from balloond.model import DomainSnapshot, DomainState, HostSnapshot


def running(backend: Any) -> DomainSnapshot:
    doms = [d for d in backend.domains() if d.state == DomainState.RUNNING]
    assert doms, "every contract host has a running domain"
    return max(doms, key=lambda d: (d.current, d.name))


class BareBackend:
    """A real backend seen through the `Backend` contract alone: none of the optional
    capabilities (DomainLookup, HoldStore, ...), so callers take their plain way. Counts
    the host listings it serves."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.listings = 0

    @property
    def uri(self) -> str:
        return str(self.inner.uri)

    def host(self) -> HostSnapshot:
        return self.inner.host()  # type: ignore[no-any-return]

    def domains(self) -> list[DomainSnapshot]:
        self.listings += 1
        return self.inner.domains()  # type: ignore[no-any-return]

    def set_target(self, name: str, target: int) -> None:
        self.inner.set_target(name, target)

    def set_maxmem(self, name: str, size: int, *, live: bool) -> bool:
        return bool(self.inner.set_maxmem(name, size, live=live))

    def watch(self, callback: Callable[[DomainEvent], None]) -> None:
        self.inner.watch(callback)

    def close(self) -> None:
        self.inner.close()


class LookingUp(BareBackend):
    """A bare backend that also has the inner backend's one-domain lookup."""

    def domain(self, name: str) -> DomainSnapshot:
        return self.inner.domain(name)  # type: ignore[no-any-return]
