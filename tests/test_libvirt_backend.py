"""The libvirt backend against libvirt's test driver: what the contract suite does not cover
(tags, channel, states, events, hold expiry, error translation)."""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

libvirt = pytest.importorskip("libvirt")

from balloond.backend.base import DomainEvent, EventKind  # noqa: E402
from balloond.backend.libvirt import LibvirtBackend  # noqa: E402
from balloond.backend.libvirt_xml import HOLD_KEY, HOLD_NS  # noqa: E402
from balloond.errors import (  # noqa: E402
    ConnectionLost,
    DomainNotFound,
    NotSupported,
    OperationFailed,
)
from balloond.model import DomainSnapshot, DomainState, Hold  # noqa: E402
from balloond.units import GiB, MiB  # noqa: E402
from tests.support.pids import dead_pid  # noqa: E402

pytestmark = pytest.mark.libvirt
HOST_XML = Path(__file__).parent / "contract" / "host.xml"


@pytest.fixture
def host() -> Iterator[LibvirtBackend]:
    backend = LibvirtBackend(f"test://{HOST_XML}")
    yield backend
    backend.close()


@pytest.fixture
def default() -> Iterator[LibvirtBackend]:
    gc.collect()  # test:///default starts fresh only when no old connection is referenced
    backend = LibvirtBackend("test:///default")
    yield backend
    backend.close()
    gc.collect()


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return bool(predicate())  # type: ignore[operator]


def test_custom_host_domains(host: LibvirtBackend) -> None:
    doms = {d.name: d for d in host.domains()}
    assert set(doms) == {"web1", "batch1", "db1"}  # off1 is shut off: not active
    web = doms["web1"]
    assert (web.current, web.maxmem) == (2 * GiB, 4 * GiB)
    assert web.tags == frozenset({"tier=web", "frontend"})
    assert web.channel == "/run/balloond/channels/web1.sock"
    assert web.hypervisor == "test"
    assert web.vcpus == 2 and web.id is not None
    assert web.stats is not None and web.stats.total == 2 * GiB
    assert doms["batch1"].tags == frozenset({"batch"})
    assert doms["db1"].state == DomainState.PAUSED
    assert host.domain("off1").state == DomainState.SHUTOFF


def test_host_total_from_node_info(host: LibvirtBackend) -> None:
    assert host.host().total == 32 * GiB  # <memory> 33554432 KiB


def test_set_maxmem_goes_to_config_on_qemu_like_drivers(host: LibvirtBackend) -> None:
    assert host.set_maxmem("web1", 6 * GiB, live=True) is False
    web = host.domain("web1")
    assert web.maxmem == 4 * GiB and web.persistent_maxmem == 6 * GiB


def test_set_maxmem_of_a_shut_off_domain(host: LibvirtBackend) -> None:
    assert host.set_maxmem("off1", 2 * GiB, live=True) is False
    assert host.domain("off1").maxmem == 2 * GiB


def test_ensure_stats_period(host: LibvirtBackend) -> None:
    host.ensure_stats_period("batch1", 7)
    with pytest.raises(DomainNotFound):
        host.ensure_stats_period("nope", 7)


def test_migration_unsupported_is_not_supported(default: LibvirtBackend) -> None:
    with pytest.raises(NotSupported, match="test"):
        default.migrate("test", "test:///default", live=True)
    assert [d.name for d in default.domains()] == ["test"]  # still running here


def test_cannot_connect_is_connection_lost(tmp_path: Path) -> None:
    with pytest.raises(ConnectionLost, match="cannot connect"):
        LibvirtBackend(f"test://{tmp_path}/missing.xml")


def test_calls_after_close_are_connection_lost(host: LibvirtBackend) -> None:
    host.close()
    host.close()  # twice is fine
    with pytest.raises(ConnectionLost):
        host.set_target("web1", GiB)


def test_target_below_one_kib_is_refused(host: LibvirtBackend) -> None:
    with pytest.raises(OperationFailed, match="not positive"):
        host.set_target("web1", 0)


def test_lifecycle_events_from_another_connection(default: LibvirtBackend) -> None:
    events: list[DomainEvent] = []
    default.watch(events.append)
    other = libvirt.open("test:///default")  # test:///default state is shared per process
    try:
        dom = other.lookupByName("test")
        dom.suspend()
        dom.resume()
        dom.destroy()
        assert wait_for(lambda: len(events) >= 3)
        kinds = [e.kind for e in events if e.name == "test"]
        assert kinds[:3] == [EventKind.SUSPENDED, EventKind.RESUMED, EventKind.STOPPED]
        assert default.domains() == []
        dom.create()
        assert wait_for(lambda: EventKind.STARTED in [e.kind for e in events])
    finally:
        other.close()


def test_a_migrations_first_pass_and_a_finished_job_are_job_events(
    default: LibvirtBackend,
) -> None:
    """The test driver cannot migrate, so libvirt's callbacks are called as its event thread
    would: the first pass of a migration says a job began (later passes say nothing more),
    a finished job says so. The real migration is in tests/e2e/test_e2e_ops.py."""
    events: list[DomainEvent] = []
    default.watch(events.append)
    # registered next to the lifecycle and metadata events (four ids: none refused here)
    assert len(default._event_ids) == 4
    dom = default._lookup("test")
    for iteration in (1, 2, 3):
        default._on_migration_pass(None, dom, iteration, None)
    default._on_job_completed(None, dom, {}, None)
    assert [(e.kind, e.name, e.uuid) for e in events] == [
        (EventKind.JOB_STARTED, "test", dom.UUIDString()),
        (EventKind.JOB_COMPLETED, "test", dom.UUIDString()),
    ]


def test_a_broken_callback_does_not_stop_events(default: LibvirtBackend) -> None:
    seen: list[DomainEvent] = []

    def broken(_event: DomainEvent) -> None:
        raise RuntimeError("observer bug")

    default.watch(broken)
    default.watch(seen.append)
    default.set_target("test", GiB)  # no lifecycle event
    other = libvirt.open("test:///default")
    try:
        other.lookupByName("test").suspend()
        assert wait_for(lambda: bool(seen))
    finally:
        other.close()


def test_tags_refresh_after_metadata_change(host: LibvirtBackend) -> None:
    events: list[DomainEvent] = []
    host.watch(events.append)
    assert {d.name: d for d in host.domains()}["batch1"].tags == {"batch"}
    dom = host._conn.lookupByName("batch1")  # same connection: the file host is per connection
    dom.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        "<tags>tier=batch nightly</tags>",
        "balloond",
        "https://balloond.dev/xmlns/1",
        libvirt.VIR_DOMAIN_AFFECT_LIVE,
    )
    assert wait_for(
        lambda: {d.name: d for d in host.domains()}["batch1"].tags == {"tier=batch", "nightly"}
    )


def test_hold_of_a_dead_command_has_expired(host: LibvirtBackend) -> None:
    pid = dead_pid()
    host.put_hold("web1", Hold(domain="x", owner="balloonctl save", reason="r", pid=pid))
    host.put_hold("batch1", Hold(domain="x", owner="balloonctl save", reason="r", pid=os.getpid()))
    holds = {h.owner + str(h.pid): h for h in host.holds().values()}
    now = time.time()
    assert not holds[f"balloonctl save{pid}"].active(now)
    assert holds[f"balloonctl save{os.getpid()}"].active(now)


def test_hold_from_another_host_is_not_judged_by_our_pids(host: LibvirtBackend) -> None:
    dom = host._conn.lookupByName("web1")
    xml = "<hold owner='balloonctl migrate' reason='r' pid='999999999' host='elsewhere'/>"
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml, HOLD_KEY, HOLD_NS, flags)
    hold = host.holds()["0b1e8f0c-0000-4000-8000-000000000001"]
    assert hold.active(time.time())
    assert socket.gethostname() != "elsewhere"


def test_garbage_hold_metadata_is_ignored(host: LibvirtBackend) -> None:
    dom = host._conn.lookupByName("web1")
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
    dom.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT, "<hold until='tomorrow'/>", HOLD_KEY, HOLD_NS, flags
    )
    assert host.holds() == {}
    assert host.get_hold("web1") is None


def test_holds_survive_a_new_connection_on_the_shared_driver(default: LibvirtBackend) -> None:
    hold = Hold(domain="x", owner="balloonctl balloon", reason="pinned", target=GiB)
    default.put_hold("test", hold)
    second = LibvirtBackend("test:///default")  # another process would see the same
    try:
        found = second.holds()
        assert [h.owner for h in found.values()] == ["balloonctl balloon"]
        assert next(iter(found.values())).target == GiB
    finally:
        second.close()


def test_saved_image_keeps_size_and_file_is_private(
    default: LibvirtBackend, tmp_path: Path
) -> None:
    old = os.umask(0)
    try:
        default.set_target("test", 1536 * MiB)
        image = tmp_path / "test.img"
        default.save("test", str(image))
    finally:
        os.umask(old)
    assert image.stat().st_mode & 0o777 == 0o600
    assert default.saved_image_memory(str(image)) == ("test", 1536 * MiB)
    with pytest.raises(OperationFailed, match="already exists"):
        default.save("test", str(image))  # even the backend never overwrites


def test_concurrent_reads_from_threads(host: LibvirtBackend) -> None:
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                assert len(host.domains()) == 3
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_xml_facts_are_cached_between_ticks_without_events(host: LibvirtBackend) -> None:
    """No watch(): tags come from the cache (one XML dump per domain, not one per tick),
    and a restart (new domain id) refreshes them."""
    assert {d.name: d for d in host.domains()}["batch1"].tags == {"batch"}
    dom = host._conn.lookupByName("batch1")
    both = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
    dom.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        "<tags>nightly</tags>",
        "balloond",
        "https://balloond.dev/xmlns/1",
        both,
    )
    assert {d.name: d for d in host.domains()}["batch1"].tags == {"batch"}
    dom.destroy()
    dom.create()
    assert {d.name: d for d in host.domains()}["batch1"].tags == {"nightly"}


def test_a_large_host_is_read_in_parallel_with_the_same_result(tmp_path: Path) -> None:
    domains = "".join(
        f"<domain type='test'><name>g{i:03d}</name><memory unit='MiB'>{1024 + i}</memory>"
        f"<currentMemory unit='MiB'>{512 + i}</currentMemory>"
        "<os><type arch='x86_64'>hvm</type></os></domain>"
        for i in range(100)
    )
    xml = tmp_path / "big.xml"
    xml.write_text(f"<node><memory>268435456</memory>{domains}</node>")
    backend = LibvirtBackend(f"test://{xml}")
    try:
        parallel = backend.domains()
        for name in ("g007", "g093"):
            backend.put_hold(name, Hold(domain="x", owner="test", reason=name))
        parallel_holds = backend.holds()
        backend.workers = 1
        serial = backend.domains()
        assert backend.holds() == parallel_holds
    finally:
        backend.close()
    assert len(parallel) == 100

    def comparable(doms: list[DomainSnapshot]) -> list[DomainSnapshot]:
        return [replace(d, cpu_time=0.0) for d in doms]  # the test driver's clock

    assert comparable(parallel) == comparable(serial)
    assert {d.current for d in parallel} == {(512 + i) * MiB for i in range(100)}
    assert sorted(h.reason for h in parallel_holds.values()) == ["g007", "g093"]


def test_without_any_job_api_the_backend_stops_asking(host: LibvirtBackend) -> None:
    """The test driver has neither jobStats nor jobInfo: both are tried once, then no job
    (a driver with only jobInfo keeps using it; see test_libvirt_stats for the mapping)."""
    assert all(d.job is None for d in host.domains())
    assert host._job_source is None
    assert all(d.job is None for d in host.domains())


def test_a_watching_daemon_reads_holds_from_its_cache_and_sees_every_change(
    host: LibvirtBackend,
) -> None:
    """With metadata events, holds() comes from the cached domain XML (no metadata RPC per
    domain per tick); a hold put, changed or cleared fires an event that drops the cache."""
    host.watch(lambda event: None)
    assert host._metadata_events
    uuid = "0b1e8f0c-0000-4000-8000-000000000001"
    host.domains()  # the tick's collect fills the cache
    assert host.holds() == {}
    host.put_hold("web1", Hold(domain=uuid, owner="balloonctl balloon", reason="r", target=GiB))
    assert wait_for(lambda: uuid in host.holds())
    assert host.holds()[uuid].target == GiB
    host.put_hold("web1", Hold(domain=uuid, owner="balloonctl save", reason="r", pid=dead_pid()))
    assert wait_for(lambda: host.holds()[uuid].owner == "balloonctl save")
    assert not host.holds()[uuid].active(time.time())  # its command died here: expired
    host.clear_hold("web1")
    assert wait_for(lambda: host.holds() == {})
    reads: list[str] = []
    dom_class = type(host._conn.lookupByName("web1"))
    original = dom_class.metadata
    try:
        dom_class.metadata = lambda self, *a: reads.append(self.name()) or original(self, *a)
        host.domains()
        host.holds()
    finally:
        dom_class.metadata = original
    assert reads == []  # from the cache, not one metadata call per domain
