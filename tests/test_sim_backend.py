"""The simulated host behind the backend contract: URIs, clocks, targets, events, reports,
holds, save/restore, migration and injected faults."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from balloond.backend import open_backend
from balloond.backend.base import Backend, EventKind, HoldStore, Operations, ReportSource
from balloond.backend.simulated import SimulatedHost, open_simulated
from balloond.errors import ConfigError, ConnectionLost, DomainNotFound, OperationFailed
from balloond.model import DomainState, Hold, JobKind, MemoryStats
from balloond.sim.scenario import parse_scenario
from balloond.units import GiB, MiB

SMALL = """\
name: small
host: {memory: 8GiB, reserve: 512MiB}
guests:
  - {name: a, maxmem: 2GiB, demand: {anon: 500MiB, file: 100MiB}}
  - {name: b, maxmem: 2GiB, agent: false, demand: {anon: 300MiB}}
  - {name: late, maxmem: 1GiB, start: 10s, demand: {anon: 100MiB}}
"""


@pytest.fixture
def host() -> SimulatedHost:
    sim = SimulatedHost.from_scenario(parse_scenario(SMALL), clock="manual", uri="sim://hostA")
    yield sim  # type: ignore[misc]
    sim.close()


def test_implements_every_protocol(host: SimulatedHost) -> None:
    for protocol in (Backend, Operations, ReportSource, HoldStore):
        assert isinstance(host, protocol)


def test_default_uri_opens_the_demo() -> None:
    sim = open_backend("sim://default?clock=manual")
    try:
        assert isinstance(sim, SimulatedHost)
        names = {d.name for d in sim.domains()}
        assert len(names) == 6 and "legacy" in names
        assert sim.host().total == 16 * GiB
    finally:
        sim.close()


def test_file_and_fleet_uris(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SMALL)
    sim = open_simulated(f"sim://{path}?clock=manual")
    assert [d.name for d in sim.domains()] == ["a", "b"]
    sim.close()
    fleet = open_simulated("sim://scale?guests=50&clock=manual")
    assert len(fleet.domains()) == 50
    assert fleet.host().free > 0
    fleet.close()


@pytest.mark.parametrize(
    "uri",
    [
        "sim://nowhere",
        "sim://default?clock=sundial",
        "sim://default?speed=-1",
        "sim://default?colour=red",
        "sim://x?guests=many",
        "sim:///does/not/exist.yaml",
    ],
)
def test_bad_uris(uri: str) -> None:
    with pytest.raises(ConfigError):
        open_simulated(uri)


def test_uuids_are_stable() -> None:
    one = SimulatedHost.from_scenario(parse_scenario(SMALL))
    two = SimulatedHost.from_scenario(parse_scenario(SMALL))
    assert [d.uuid for d in one.domains()] == [d.uuid for d in two.domains()]
    assert len({d.uuid for d in one.domains()}) == 2


def test_free_is_total_minus_current(host: SimulatedHost) -> None:
    assert host.host().free == 8 * GiB - 4 * GiB
    host.set_target("a", 1 * GiB)
    host.advance(10)
    assert host.host().free == 8 * GiB - 3 * GiB - 1 * GiB  # 'late' booted at 1 GiB


def test_set_target_moves_current_over_time(host: SimulatedHost) -> None:
    host.set_target("a", 1 * GiB)
    host.advance(1)
    (a,) = [d for d in host.domains() if d.name == "a"]
    assert 1 * GiB < a.current < 2 * GiB
    host.advance(10)
    (a,) = [d for d in host.domains() if d.name == "a"]
    assert a.current == 1 * GiB
    assert a.stats is not None and a.stats.total is not None and a.stats.total < 1 * GiB


@pytest.mark.parametrize("target", [0, 1 * MiB, 3 * GiB, -5])
def test_set_target_out_of_range(host: SimulatedHost, target: int) -> None:
    with pytest.raises(OperationFailed, match="domain 'a'"):
        host.set_target("a", target)


def test_unknown_domain(host: SimulatedHost) -> None:
    with pytest.raises(DomainNotFound, match="ghost"):
        host.set_target("ghost", 1 * GiB)


def test_lifecycle_events_and_boot(host: SimulatedHost) -> None:
    events: list[EventKind] = []
    host.watch(lambda e: events.append(e.kind))
    host.advance(10)
    assert "late" in {d.name for d in host.domains()}
    assert events == [EventKind.STARTED]


def test_reports_only_for_agents(host: SimulatedHost) -> None:
    assert host.reports() == {}
    host.advance(2)
    reports = host.reports()
    (a,) = [d for d in host.domains() if d.name == "a"]
    assert set(reports) == {a.uuid}
    assert reports[a.uuid].seq == 2 and reports[a.uuid].psi_some == 0.0


def test_holds_are_kept_by_uuid(host: SimulatedHost) -> None:
    hold = Hold(domain="a", owner="test", reason="testing", target=1 * GiB)
    host.put_hold("a", hold)
    (a,) = [d for d in host.domains() if d.name == "a"]
    assert host.holds() == {a.uuid: hold}
    host.clear_hold("a")
    assert host.holds() == {}


def test_wall_clock_advances_by_itself() -> None:
    sim = SimulatedHost.from_scenario(parse_scenario(SMALL), clock="wall", speed=1000.0)
    time.sleep(0.05)
    sim.domains()
    assert sim.sim.t >= 10  # at least 0.05 s x 1000
    assert abs(sim.now() - time.time()) < 5


def test_save_and_restore(host: SimulatedHost, tmp_path: Path) -> None:
    image = tmp_path / "a.save"
    host.save("a", str(image))
    assert "a" not in {d.name for d in host.domains()}
    assert host.saved_image_memory(str(image)) == ("a", 2 * GiB)
    with pytest.raises(OperationFailed, match="already exists"):
        host.save("b", str(image))
    assert host.restore(str(image)) == "a"
    assert "a" in {d.name for d in host.domains()}


def test_restore_rejects_garbage(host: SimulatedHost, tmp_path: Path) -> None:
    image = tmp_path / "junk.save"
    image.write_text('{"format": "balloond-sim-save/1", "name": "a", "memory": -1}')
    with pytest.raises(OperationFailed):
        host.restore(str(image))
    image.write_text("\x00\x01 not json")
    with pytest.raises(OperationFailed):
        host.saved_image_memory(str(image))
    image.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(OperationFailed, match="not a simulated host's saved image"):
        host.restore(str(image))


def test_migrate_honours_destination_capacity(host: SimulatedHost) -> None:
    tiny = parse_scenario(SMALL.replace("memory: 8GiB", "memory: 3GiB"))
    dest = SimulatedHost.from_scenario(tiny, uri="sim://hostB")
    try:
        with pytest.raises(OperationFailed, match="already exists"):
            host.migrate("a", "sim://hostB", live=True)
        host.vanish("a")
        host.sim.adopt(dest.sim.remove("a"))  # put 'a' back on A only
        dest.sim.remove("b")
        result = host.migrate("a", "sim://hostB", live=True)
        assert result.bytes_transferred == 2 * GiB
        assert "a" in {d.name for d in dest.domains()}
        assert "a" not in {d.name for d in host.domains()}
        with pytest.raises(OperationFailed, match="only"):
            host.migrate("b", "sim://hostB", live=True)  # 3 GiB host, 2 GiB used
        with pytest.raises(ConnectionLost):
            host.migrate("b", "sim://nowhere", live=True)
    finally:
        dest.close()


def test_injected_faults(host: SimulatedHost) -> None:
    host.fail_next("a", "set_target")
    with pytest.raises(OperationFailed, match="injected"):
        host.set_target("a", 1 * GiB)
    host.set_target("a", 1 * GiB)
    host.break_connection()
    with pytest.raises(ConnectionLost):
        host.domains()
    host.break_connection(False)
    host.vanish("b")
    with pytest.raises(DomainNotFound):
        host.set_target("b", 1 * GiB)
    host.override_stats("a", MemoryStats(total=-1))
    (a,) = host.domains()
    assert a.stats == MemoryStats(total=-1)


def test_paused_and_busy_domains(host: SimulatedHost) -> None:
    assert all(d.stats is None for d in host.domains())  # nothing reported before a step
    host.advance(1)
    host.pause("a")
    host.set_job("b", JobKind.MIGRATION)
    host.advance(5)
    by_name = {d.name: d for d in host.domains()}
    assert by_name["a"].state == DomainState.PAUSED
    assert by_name["b"].job == JobKind.MIGRATION
    stats = by_name["a"].stats
    assert stats is not None and stats.last_update is not None
    assert stats.last_update == host.now() - 5  # a paused guest's statistics go stale


def test_balloons_grow_only_into_free_memory() -> None:
    text = """\
name: tight
host: {memory: 6GiB, reserve: 512MiB}
guests:
  - {name: a, maxmem: 4GiB, initial: 2GiB, demand: {anon: 500MiB}}
  - {name: b, maxmem: 4GiB, initial: 2GiB, demand: {anon: 500MiB}}
"""
    sim = SimulatedHost.from_scenario(parse_scenario(text))
    sim.set_target("a", 4 * GiB)
    sim.set_target("b", 4 * GiB)
    for _ in range(20):
        sim.advance(1)
        assert sim.sim.free >= 0
    assert sim.host().free == 0
    currents = sorted(d.current for d in sim.domains())
    assert sum(currents) == 6 * GiB
