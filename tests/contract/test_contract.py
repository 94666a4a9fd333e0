"""The backend contract (balloond/backend/base.py), asserted against every backend."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from balloond.backend.base import Backend, DomainEvent, EventKind, HoldStore, Operations
from balloond.errors import BackendError, ConnectionLost, DomainNotFound, OperationFailed
from balloond.model import DomainState, Hold
from balloond.units import MiB
from tests.support.contract import running


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll for something delivered by another thread (libvirt events). Not a speed limit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_implements_the_protocols(backend: Any) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(backend, Operations)
    assert isinstance(backend, HoldStore)
    assert backend.uri


def test_host_sizes_are_bytes(backend: Any) -> None:
    host = backend.host()
    assert isinstance(host.total, int) and isinstance(host.free, int)
    assert host.total >= 1024 * MiB  # a KiB or MiB figure would be far smaller
    assert 0 <= host.free <= host.total


def test_domains_are_active_with_sizes_in_bytes(backend: Any) -> None:
    doms = backend.domains()
    assert doms
    for dom in doms:
        assert dom.state != DomainState.SHUTOFF
        assert isinstance(dom.current, int) and isinstance(dom.maxmem, int)
        assert 64 * MiB <= dom.current <= dom.maxmem  # KiB figures would be < 64 MiB here
        assert dom.uuid and dom.name
        assert dom.hypervisor
        if dom.stats is not None and dom.stats.total is not None:
            assert dom.stats.total >= 64 * MiB
    assert len({d.uuid for d in doms}) == len(doms)


def test_set_target_moves_current(backend: Any, harness: Any) -> None:
    dom = running(backend)
    target = max(dom.current // 2, 256 * MiB) // MiB * MiB
    backend.set_target(dom.name, target)
    harness.settle()
    after = {d.name: d for d in backend.domains()}[dom.name]
    assert after.current == target
    assert after.maxmem == dom.maxmem  # set_target never changes maxmem


def test_set_target_above_maxmem_fails(backend: Any) -> None:
    dom = running(backend)
    with pytest.raises(OperationFailed, match=dom.name):
        backend.set_target(dom.name, dom.maxmem + 1024 * MiB)


def test_vanished_domain_raises_domain_not_found(backend: Any, harness: Any) -> None:
    dom = running(backend)
    harness.vanish(dom.name)
    assert dom.uuid not in {d.uuid for d in backend.domains()}
    with pytest.raises(DomainNotFound):
        backend.set_target(dom.name, 512 * MiB)
    with pytest.raises(DomainNotFound):
        backend.put_hold(dom.name, Hold(domain=dom.uuid, owner="test", reason="gone"))


def test_unknown_domain_raises_domain_not_found(backend: Any) -> None:
    with pytest.raises(DomainNotFound):
        backend.set_target("no-such-domain-\u00e9", 512 * MiB)


def test_dropped_connection_raises_connection_lost(backend: Any, harness: Any) -> None:
    harness.drop_connection()
    with pytest.raises(ConnectionLost):
        backend.domains()


def test_set_maxmem_reports_whether_it_applied_live(backend: Any) -> None:
    dom = running(backend)
    size = dom.maxmem + 512 * MiB
    live = backend.set_maxmem(dom.name, size, live=True)
    after = {d.name: d for d in backend.domains()}[dom.name]
    if live:
        assert after.maxmem == size
    else:  # next boot: the running domain keeps its maximum, the config has the new one
        assert after.maxmem == dom.maxmem
        assert after.persistent_maxmem == size


def test_holds_round_trip(backend: Any) -> None:
    dom = running(backend)
    hold = Hold(
        domain=dom.uuid,
        owner="balloonctl balloon",
        reason="operator asked for 1 GiB",
        until=time.time() + 3600,
        target=1024 * MiB,
    )
    backend.put_hold(dom.name, hold)
    found = backend.holds()[dom.uuid]
    assert (found.owner, found.reason, found.target) == (hold.owner, hold.reason, hold.target)
    assert found.until == pytest.approx(hold.until)
    assert found.active(time.time())
    backend.clear_hold(dom.name)
    assert dom.uuid not in backend.holds()
    backend.clear_hold(dom.name)  # clearing twice is harmless


def test_save_and_restore_round_trip(backend: Any, harness: Any, tmp_path: Path) -> None:
    dom = running(backend)
    events: list[DomainEvent] = []
    lock = threading.Lock()

    def record(event: DomainEvent) -> None:
        with lock:
            events.append(event)

    backend.watch(record)
    image = tmp_path / "saved.img"
    backend.save(dom.name, str(image))
    assert image.exists()
    assert dom.uuid not in {d.uuid for d in backend.domains() if d.state != DomainState.SHUTOFF}
    assert backend.saved_image_memory(str(image)) == (dom.name, dom.current)
    assert wait_for(lambda: any(e.kind == EventKind.SAVED and e.uuid == dom.uuid for e in events))
    assert backend.restore(str(image)) == dom.name
    restored = {d.name: d for d in backend.domains()}[dom.name]
    assert restored.current == dom.current


@pytest.mark.parametrize(
    "content",
    [b"\x00not a saved domain\xff" * 64, b"<domain><name>x</name>", b"", b'{"format": '],
    ids=["binary", "truncated-xml", "empty", "truncated-json"],
)
def test_damaged_image_is_refused(backend: Any, tmp_path: Path, content: bytes) -> None:
    image = tmp_path / "damaged.img"
    image.write_bytes(content)
    before = sorted(d.name for d in backend.domains())
    with pytest.raises(BackendError, match=r"not a .*saved|damaged"):
        backend.saved_image_memory(str(image))
    with pytest.raises(BackendError):
        backend.restore(str(image))
    assert sorted(d.name for d in backend.domains()) == before
