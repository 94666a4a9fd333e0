"""The control loop over real backends: the simulated host with a manual clock, and libvirt's
test driver. Faults come from small wrappers around those backends (tests/support/daemon.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from balloond.backend.base import DomainEvent, EventKind
from balloond.model import Reason
from balloond.units import MiB
from tests.support.daemon import (
    FlakyLink,
    Recording,
    Vanishing,
    floors,
    hold,
    make_daemon,
    run_ticks,
    sim_host,
)


def test_ticks_over_a_fleet_keep_every_target_within_floor_and_maxmem() -> None:
    host = sim_host()
    backend = Recording(host)
    daemon = make_daemon(lambda: backend, clock=host.now)
    run_ticks(daemon, host, 60)
    floor_of = floors(daemon)
    maxmem_of = {d.name: d.maxmem for d in host.domains()}
    assert len(backend.calls) > 10, "a minute of the demo workload must move something"
    for name, target in backend.calls:
        assert floor_of[name] <= target <= maxmem_of[name], (name, target)
    telemetry = daemon.telemetry()
    assert telemetry.ticks == 60 and telemetry.tick_failures == 0
    assert sum(telemetry.adjustments.values()) == len(backend.calls)
    assert daemon.last_decision() is not None


def test_sizes_move_in_the_host_after_ticks() -> None:
    host = sim_host()
    before = {d.name: d.current for d in host.domains()}
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    run_ticks(daemon, host, 20)
    after = {d.name: d.current for d in host.domains()}
    assert after != before


def test_dry_run_decides_but_moves_nothing() -> None:
    host = sim_host()
    backend = Recording(host)
    daemon = make_daemon(lambda: backend, clock=host.now, dry_run=True)
    run_ticks(daemon, host, 10)
    decision = daemon.last_decision()
    assert decision is not None and decision.actions, "there was something to do"
    assert backend.calls == []
    assert sum(daemon.telemetry().adjustments.values()) == 0
    # Nothing applied must not be remembered as promised (it would block growth later).
    state = daemon.controller_state()
    assert all(state.promised(d.uuid, d.current) == 0 for d in decision.domains)


def test_a_domain_vanishing_between_list_and_act_does_not_stop_the_others() -> None:
    host = sim_host()
    backend = Vanishing(host, victim="idle")
    daemon = make_daemon(lambda: backend, clock=host.now)
    host.advance(5)
    decision = daemon.tick()
    assert decision is not None
    acting = {a.name for a in decision.actions}
    assert "idle" in acting, "the victim must have had an action for this test to mean much"
    applied = {name for name, _ in backend.calls}
    assert applied == acting - {"idle"}
    assert daemon.telemetry().failures["domain_vanished"] == 1
    assert daemon.connected


def test_set_target_failing_for_one_domain_does_not_stop_the_others() -> None:
    host = sim_host()
    backend = Recording(host)
    daemon = make_daemon(lambda: backend, clock=host.now)
    host.fail_next("web", "set_target")
    host.advance(5)
    decision = daemon.tick()
    assert decision is not None
    acting = {a.name for a in decision.actions}
    assert "web" in acting
    assert {name for name, _ in backend.calls} == acting - {"web"}
    assert daemon.telemetry().failures["set_target"] == 1
    # The failed target is not kept as a promise or a stuck-detection mark.
    web = next(d for d in decision.domains if d.name == "web")
    assert daemon.controller_state().memo(web.uuid).target is None


def test_lost_connection_moves_nothing_and_reconnects_with_backoff() -> None:
    host = sim_host()
    link = FlakyLink(host)
    daemon = make_daemon(link.connect, clock=host.now)
    run_ticks(daemon, host, 3)
    moved_before = len(link.calls())
    assert daemon.telemetry().libvirt_up

    link.drop()
    for _ in range(6):
        host.advance(5)
        assert daemon.tick() is None
    telemetry = daemon.telemetry()
    assert not telemetry.libvirt_up and not daemon.connected
    assert telemetry.libvirt_down_since is not None
    assert len(link.calls()) == moved_before, "nothing may move while the link is down"
    assert telemetry.tick_failures == 6

    link.restore()
    host.advance(60)  # past any backoff
    assert daemon.tick() is not None
    telemetry = daemon.telemetry()
    assert telemetry.libvirt_up and telemetry.reconnects == 1
    assert link.opened == 2
    run_ticks(daemon, host, 10)
    floor_of = floors(daemon)
    after = link.calls()[moved_before:]
    assert after, "balancing resumed after the reconnect"
    assert all(target >= floor_of[name] for name, target in after), after


def test_reconnect_attempts_back_off_exponentially_up_to_the_cap() -> None:
    host = sim_host()
    link = FlakyLink(host)
    link.up = False
    daemon = make_daemon(link.connect, clock=host.now)
    attempts: list[float] = []
    real_connect = link.connect

    def counting_connect() -> Recording:
        attempts.append(host.now())
        return real_connect()

    daemon._connect = counting_connect  # the same object, observed
    start = host.now()
    for _ in range(600):  # 600 s in 1 s steps
        host.advance(1)
        daemon.tick()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[:5] == pytest.approx([1, 2, 4, 8, 16], abs=1.01)
    assert max(gaps) <= 60 + 1
    assert attempts[0] - start <= 1.01


def test_restart_never_moves_a_domain_below_its_floor(tmp_path: Path) -> None:
    host = sim_host()
    first = Recording(host)
    daemon = make_daemon(lambda: first, clock=host.now, state_dir=tmp_path)
    run_ticks(daemon, host, 20)
    floor_of = floors(daemon)
    daemon.close()
    assert (tmp_path / "state.json").exists()
    # While the daemon was away an operator squeezed 'web' far under its floor.
    host.set_target("web", 256 * MiB)
    host.advance(120)

    second = Recording(host)
    restarted = make_daemon(lambda: second, clock=host.now, state_dir=tmp_path)
    run_ticks(restarted, host, 20)
    assert second.calls, "the restarted daemon works"
    for name, target in second.calls:
        assert target >= floor_of[name], (name, target)
    web_targets = [t for n, t in second.calls if n == "web"]
    assert web_targets and web_targets[0] >= floor_of["web"]


def test_holds_from_the_backend_keep_a_domain_still() -> None:
    host = sim_host()
    backend = Recording(host)
    daemon = make_daemon(lambda: backend, clock=host.now)
    web = next(d for d in host.domains() if d.name == "web")
    host.put_hold("web", hold(web.uuid, until=host.now() + 1000))
    run_ticks(daemon, host, 10)
    assert "web" not in {name for name, _ in backend.calls}
    decision = daemon.last_decision()
    assert decision is not None
    assert next(d for d in decision.domains if d.name == "web").reason == Reason.HOLD
    assert web.uuid in daemon.holds()


def test_expired_and_dead_process_holds_do_not_count() -> None:
    host = sim_host()
    backend = Recording(host)
    daemon = make_daemon(lambda: backend, clock=host.now)
    uuids = {d.name: d.uuid for d in host.domains()}
    host.put_hold("web", hold(uuids["web"], until=host.now() - 1))
    dead = hold(uuids["idle"])
    daemon.holds_book.put(uuids["idle"], type(dead)(**{**_fields(dead), "pid": 2**22 + 12345}))
    host.advance(5)
    daemon.tick()
    assert daemon.holds() == {}


def _fields(value: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(value) and not isinstance(value, type)
    return asdict(value)


def test_lifecycle_events_wake_the_loop_and_forget_departed_domains() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    woken: list[int] = []
    daemon.wake = lambda: woken.append(1)
    run_ticks(daemon, host, 1)
    web = next(d for d in host.domains() if d.name == "web")
    daemon.on_event(DomainEvent(EventKind.STARTED, "web", web.uuid, host.now()))
    assert woken == [1]
    daemon.on_event(DomainEvent(EventKind.STOPPED, "web", web.uuid, host.now()))
    snapshot, decision = daemon.last_snapshot(), daemon.last_decision()
    assert snapshot is not None and decision is not None
    assert "web" not in {d.name for d in snapshot.domains}
    assert "web" not in {d.name for d in decision.domains}


def test_events_from_the_simulated_host_reach_the_daemon() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    woken: list[int] = []
    daemon.wake = lambda: woken.append(1)
    run_ticks(daemon, host, 1)
    host.pause("web")
    host.pause("web", False)  # RESUMED wakes the loop
    assert woken


@pytest.mark.libvirt
def test_ticks_over_libvirt_test_driver_with_a_vanishing_domain(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    from balloond.backend.libvirt import LibvirtBackend
    from tests.support.daemon import HOST_XML

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "cap.yaml").write_text(
        "policies:\n  - name: capped\n    match: {names: ['big*']}\n    ceiling: 50%\n"
    )
    inner = LibvirtBackend(f"test://{HOST_XML}")

    class DestroyAfterList(Recording):
        def domains(self):  # type: ignore[no-untyped-def]
            listed = self.inner.domains()
            dom = self.inner._conn.lookupByName("big2")
            dom.destroy()  # behind the daemon's back, between list and act
            dom.undefine()
            return listed

    backend = DestroyAfterList(inner)
    clock = [1_000_000.0]
    daemon = make_daemon(lambda: backend, clock=lambda: clock[0], policy_dir=policies)
    try:
        decision = daemon.tick()
        assert decision is not None
        assert {a.name for a in decision.actions} == {"big1", "big2", "big3"}
        assert sorted(backend.calls) == [("big1", 2048 * MiB), ("big3", 1024 * MiB)]
        assert daemon.telemetry().failures["domain_vanished"] == 1
        assert {d.name: d.current for d in inner.domains()}["big1"] == 2048 * MiB
    finally:
        inner.close()


@pytest.mark.libvirt
def test_libvirt_lifecycle_events_reach_the_daemon_between_ticks(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    import time

    from balloond.backend.libvirt import LibvirtBackend
    from tests.support.daemon import HOST_XML

    backend = LibvirtBackend(f"test://{HOST_XML}")
    clock = [1_000_000.0]
    daemon = make_daemon(lambda: Recording(backend), clock=lambda: clock[0], dry_run=True)
    woken: list[int] = []
    daemon.wake = lambda: woken.append(1)
    try:
        assert daemon.tick() is not None  # connects and subscribes to events
        dom = backend._conn.lookupByName("big2")
        dom.destroy()
        for _ in range(200):  # libvirt delivers events on its own thread
            snapshot = daemon.last_snapshot()
            if snapshot is not None and "big2" not in {d.name for d in snapshot.domains}:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the stopped domain was never forgotten")
        dom.create()
        for _ in range(200):
            if woken:
                break
            time.sleep(0.05)
        assert woken, "a started domain pulls the next tick forward"
    finally:
        backend.close()


def test_a_domain_vanishing_while_collecting_skips_the_tick_but_keeps_the_connection() -> None:
    from balloond.errors import DomainNotFound

    host = sim_host()

    class HoldsRace(Recording):
        def holds(self):  # type: ignore[no-untyped-def]
            raise DomainNotFound("domain 'web' not found (vanished while reading its hold)")

    link_opened = []

    def connect() -> Recording:
        link_opened.append(1)
        return HoldsRace(host)

    daemon = make_daemon(connect, clock=host.now)
    host.advance(5)
    assert daemon.tick() is None
    assert daemon.connected and len(link_opened) == 1
    telemetry = daemon.telemetry()
    assert telemetry.libvirt_up and telemetry.failures["domain_vanished"] == 1


def test_decision_lines_name_the_policy_and_the_rule_that_chose_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "web.yaml").write_text(
        "policies:\n  - name: webby\n    match: {names: ['we*']}\n    floor: 256MiB\n"
    )
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, policy_dir=tmp_path, dry_run=True)
    caplog.set_level("DEBUG", logger="balloond.decisions")  # routine shrinks are at debug
    run_ticks(daemon, host, 10)
    lines = [r.getMessage() for r in caplog.records if r.name == "balloond.decisions"]
    web = [line for line in lines if line.split()[2] == "web"]
    others = [line for line in lines if line.split()[2] != "web"]
    assert web and others, lines
    assert all(line.endswith(" [policy 'webby' by name 'we*']") for line in web), web
    assert all(line.endswith(" [policy 'default' by default]") for line in others), others


@pytest.mark.parametrize(
    ("kind", "gone", "wakes"),
    [
        (EventKind.STARTED, False, True),
        (EventKind.RESTORED, False, True),
        (EventKind.RESUMED, False, True),
        (EventKind.STOPPED, True, False),
        (EventKind.SAVED, True, False),
        (EventKind.MIGRATED, True, False),
        (EventKind.UNDEFINED, True, False),
        (EventKind.CRASHED, True, False),
        (EventKind.SUSPENDED, False, False),
        (EventKind.JOB_STARTED, False, True),
        (EventKind.JOB_COMPLETED, False, True),
        (EventKind.DEFINED, False, False),
    ],
)
def test_each_lifecycle_event_updates_the_view_between_ticks(
    kind: EventKind, gone: bool, wakes: bool
) -> None:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    woken: list[int] = []
    daemon.wake = lambda: woken.append(1)
    run_ticks(daemon, host, 1)
    web = next(d for d in host.domains() if d.name == "web")
    daemon.on_event(DomainEvent(kind, "web", web.uuid, host.now()))
    snapshot, decision = daemon.last_snapshot(), daemon.last_decision()
    assert snapshot is not None and decision is not None
    assert ("web" not in {d.name for d in snapshot.domains}) is gone
    assert ("web" not in {d.name for d in decision.domains}) is gone
    assert len(snapshot.domains) == len(decision.domains) == len(host.domains()) - gone
    assert bool(woken) is wakes


def test_a_store_hold_is_judged_by_the_store_not_by_our_pids() -> None:
    """A hold whose command died on this host is expired by the store (the simulator's as the
    libvirt one); a hold the store keeps (a `balloonctl --connect` from another host names a
    pid that does not exist here) is honoured, not re-judged against this host's pids."""
    from dataclasses import replace

    from balloond.daemon.holds import HoldBook

    host = sim_host()
    uuids = {d.name: d.uuid for d in host.domains()}
    gone = 2**22 + 12345  # above pid_max's default: no such process here
    host.put_hold("web", replace(hold(uuids["web"]), pid=gone))
    stored = host.holds()
    assert not stored[uuids["web"]].active(host.now())  # died here: expired by the store
    remote = {uuids["idle"]: replace(hold(uuids["idle"]), pid=gone)}  # kept by its store
    book = HoldBook({}, host.now)
    assert set(book.active({**stored, **remote}, host.now())) == {uuids["idle"]}
