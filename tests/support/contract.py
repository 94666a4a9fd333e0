"""Shared by the contract suites (tests/contract): one domain every contract host runs."""

from __future__ import annotations

from typing import Any

from balloond.model import DomainSnapshot, DomainState


def running(backend: Any) -> DomainSnapshot:
    doms = [d for d in backend.domains() if d.state == DomainState.RUNNING]
    assert doms, "every contract host has a running domain"
    return max(doms, key=lambda d: (d.current, d.name))
