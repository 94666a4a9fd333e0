"""The runner: apscheduler owns time, events pull the next tick forward, a bug in one tick
does not end the daemon, and the watchdog is petted only while ticks finish."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from balloond.backend.base import EventKind
from balloond.backend.simulated import SimulatedHost
from balloond.daemon.loop import Daemon
from balloond.daemon.notify import Notifier
from balloond.daemon.scheduler import Runner, status_line
from tests.support.daemon import Recording, make_daemon, sim_host


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a condition the runner's threads bring about (bounded; no timing asserted)."""
    for _ in range(600):
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"never happened: {what}")


def _ticks(daemon: Daemon) -> int:
    return daemon.telemetry().ticks


def _started(backend: Recording, host: SimulatedHost) -> tuple[Daemon, Runner]:
    """A daemon on `backend` with an hour between ticks (only wakes tick again), running."""
    daemon = make_daemon(lambda: backend, clock=host.now, interval=3600)
    runner = Runner(daemon, notifier=Notifier(""))
    runner.start()
    return daemon, runner


def test_first_tick_at_once_then_wakes_pull_ticks_forward() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, interval=3600)
    runner = Runner(daemon, notifier=Notifier(""))
    runner.start()
    try:
        _until(lambda: _ticks(daemon) == 1, "the first tick")
        runner.wake()
        _until(lambda: _ticks(daemon) == 2, "a tick after wake()")
        web = next(d for d in host.domains() if d.name == "web")
        host.emit(EventKind.STARTED, "web", web.uuid)  # as libvirt would, from its thread
        _until(lambda: _ticks(daemon) == 3, "a tick after a domain started")
    finally:
        runner.shutdown()
    settled = _ticks(daemon)
    runner.wake()  # after shutdown: a no-op, not an error
    time.sleep(0.2)
    assert _ticks(daemon) == settled == 3
    assert not daemon.connected


def test_a_wake_during_a_tick_is_served_by_a_tick_right_after_it() -> None:
    """libvirt delivers "a migration began" while a tick may be running: apscheduler skips a
    run that falls due during a running one, so without the runner keeping the wake, the
    domain would be seen an interval (here an hour) later."""
    host = sim_host()
    entered, release = threading.Event(), threading.Event()

    class Slow(Recording):
        def domains(self) -> Any:
            if _ticks(daemon) == 1:  # the second tick blocks until the test lets it go
                entered.set()
                assert release.wait(30)
            return self.inner.domains()

    backend = Slow(host)
    daemon, runner = _started(backend, host)
    try:
        _until(lambda: _ticks(daemon) == 1, "the first tick")
        runner.wake()
        assert entered.wait(30), "the second tick never started"
        runner.wake()  # during the second tick
        runner.wake()  # wakes coalesce: one more tick serves both
        release.set()
        _until(lambda: _ticks(daemon) == 3, "a tick right after the one the wake came in")
        time.sleep(0.3)
        assert _ticks(daemon) == 3
    finally:
        runner.shutdown()


def test_a_bug_in_a_tick_is_logged_and_the_next_tick_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = sim_host()
    calls = {"n": 0}

    class Buggy(Recording):
        def domains(self) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise ZeroDivisionError("a bug, not a backend error")
            return self.inner.domains()

    backend = Buggy(host)
    daemon, runner = _started(backend, host)
    try:
        _until(lambda: _ticks(daemon) == 1, "the failing tick to be counted")
        assert daemon.telemetry().tick_failures == 1
        runner.wake()
        _until(lambda: _ticks(daemon) == 2, "the next tick")
    finally:
        runner.shutdown()
    assert daemon.telemetry().tick_failures == 1
    assert daemon.last_decision() is not None
    assert any("tick failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_watchdog_is_petted_only_while_ticks_finish(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(0.5)
        host = sim_host()
        daemon = make_daemon(lambda: Recording(host), clock=host.now)
        runner = Runner(daemon, notifier=Notifier(str(path)))
        runner._pet_watchdog()
        assert server.recv(100) == b"WATCHDOG=1"
        runner._last_tick_end -= 10 * daemon.settings.interval  # ticks stopped finishing
        runner._pet_watchdog()
        with pytest.raises(TimeoutError):
            server.recv(100)


def test_ready_is_sent_once_then_status_then_ready_again_after_reload(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        host = sim_host()
        daemon = make_daemon(lambda: Recording(host), clock=host.now)
        runner = Runner(daemon, notifier=Notifier(str(path)))
        runner._run_tick()
        assert server.recv(4096).startswith(b"READY=1\nSTATUS=6 domains")
        runner._run_tick()
        assert server.recv(4096).startswith(b"STATUS=6 domains")
        runner.reload()
        assert server.recv(4096) == b"RELOADING=1"
        runner._run_tick()
        assert server.recv(4096).startswith(b"READY=1")


def test_status_line_says_when_the_hypervisor_is_unreachable() -> None:
    host = sim_host()
    host.break_connection(True)

    def refuse() -> Recording:
        host._sync()  # raises ConnectionLost while broken
        return Recording(host)

    daemon = make_daemon(refuse, clock=host.now)
    daemon.tick()
    assert status_line(daemon) == "test unreachable; retrying"


def test_after_tick_hooks_run_and_a_failing_hook_does_not_stop_ticks() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    ran: list[str] = []

    def broken() -> None:
        raise OSError("disk full")

    runner = Runner(daemon, notifier=Notifier(""), after_tick=[broken, lambda: ran.append("ok")])
    runner._run_tick()
    runner._run_tick()
    assert ran == ["ok", "ok"] and _ticks(daemon) == 2


def test_wait_returns_after_its_duration() -> None:
    host = sim_host()
    runner = Runner(make_daemon(lambda: Recording(host), clock=host.now), notifier=Notifier(""))
    done = threading.Event()
    threading.Thread(target=lambda: (runner.wait(0.2), done.set()), daemon=True).start()
    assert done.wait(30)
