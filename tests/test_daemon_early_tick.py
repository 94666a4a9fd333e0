"""A guest agent report showing pressure above its policy's pressure_target ticks the daemon
at once (debounced), instead of waiting for the next interval: a fast spike can OOM a guest
inside one interval. The end-to-end test carries the report over a real unix socket."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from balloond.backend.simulated import SimulatedHost
from balloond.channels import AgentHub, HubSettings
from balloond.daemon.assemble import build_daemon
from balloond.daemon.early import EARLY_TICK_GAP
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.daemon.notify import Notifier
from balloond.daemon.reload import PolicyWatcher
from balloond.daemon.scheduler import Runner
from balloond.model import DomainSnapshot, GuestReport
from balloond.policy.model import Amount
from balloond.telemetry import Telemetry
from balloond.units import GiB, MiB
from tests.support.daemon import Recording, sim_host


class WithChannel(Recording):
    """The simulated host, with a guest agent channel socket on one domain (as libvirt
    would list a `<channel type='unix'>`)."""

    def __init__(self, inner: SimulatedHost, name: str, path: str) -> None:
        super().__init__(inner)
        self.name, self.path = name, path

    def domains(self) -> list[DomainSnapshot]:
        listed: list[DomainSnapshot] = self.inner.domains()
        return [replace(d, channel=self.path) if d.name == self.name else d for d in listed]

    def reports(self) -> dict[str, GuestReport]:
        return {}  # only the channel reports, as on a real hypervisor


def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"never happened: {what}")


class Clock:
    """The daemon's clock, moved by hand (the simulated host's moves in whole steps)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _daemon(
    clock: Callable[[], float],
    backend: Any,
    sources: list[Any],
    interval: float,
    policy_dir: Path | None = None,
) -> Daemon:
    telemetry = Telemetry()
    policies = PolicyWatcher(policy_dir, telemetry)
    policies.load_initial()
    return Daemon(
        lambda: backend,
        LoopSettings(interval=interval, reserve=Amount(size=GiB)),
        policies,
        uri="test",
        clock=clock,
        telemetry=telemetry,
        report_sources=sources,
    )


def _line(seq: int, psi: float) -> bytes:
    report = {"v": 1, "type": "report", "seq": seq, "psi_some": psi, "demand": 256 * MiB}
    return json.dumps(report).encode() + b"\n"


def test_a_pressure_report_over_a_real_socket_ticks_before_the_interval(tmp_path: Path) -> None:
    path = str(tmp_path / "web.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # plays QEMU (mode='bind')
    server.bind(path)
    server.listen(1)
    server.settimeout(10)
    host = sim_host()
    telemetry = Telemetry()
    hub = AgentHub(telemetry, settings=HubSettings(reconnect_interval=0.05))
    daemon = _daemon(host.now, WithChannel(host, "web", path), [hub], interval=3600)
    hub.on_report = daemon.on_report
    runner = Runner(daemon, notifier=Notifier(""))
    runner.start()
    conn = None
    try:
        _until(lambda: daemon.telemetry().ticks == 1, "the first tick (connects the channel)")
        conn, _ = server.accept()
        conn.sendall(_line(1, 0.001))  # 0.1 % stall: under the default 0.5 % target
        _until(lambda: "web" in telemetry.copy().reports_accepted, "the calm report")
        conn.sendall(_line(2, 0.25))  # 25 % stall
        _until(lambda: daemon.telemetry().ticks == 2, "a tick pulled forward by pressure")
        snapshot = daemon.last_snapshot()
        assert snapshot is not None
        web = next(d for d in snapshot.domains if d.name == "web")
        assert web.report is not None and web.report.psi_some == 0.25
    finally:
        runner.shutdown()
        hub.close()
        if conn is not None:
            conn.close()
        server.close()


def test_only_pressure_above_the_policy_target_ticks_early_and_at_most_every_gap() -> None:
    host = sim_host()
    clock = Clock(host.now())
    daemon = _daemon(clock, Recording(host), [], interval=2.0)
    wakes: list[float] = []
    daemon.wake = lambda: wakes.append(clock.now)
    web = next(d for d in host.domains() if d.name == "web")
    report = GuestReport(seq=1, received_at=clock.now, psi_some=0.9)
    daemon.on_report(web.uuid, report)
    assert wakes == []  # before the first tick the domain's policy is unknown: no early tick
    daemon.tick()
    daemon.on_report(web.uuid, replace(report, psi_some=0.005))  # at the target, not above
    daemon.on_report(web.uuid, replace(report, psi_some=None, psi_some_avg10=0.001))
    daemon.on_report(web.uuid, replace(report, psi_some=None))  # no PSI at all
    daemon.on_report("no-such-uuid", report)
    assert wakes == []
    daemon.on_report(web.uuid, replace(report, psi_some=None, psi_some_avg10=0.02))
    assert len(wakes) == 1
    daemon.on_report(web.uuid, report)  # a second guest under pressure, same instant
    assert len(wakes) == 1  # debounced
    clock.now += EARLY_TICK_GAP / 2
    daemon.on_report(web.uuid, report)
    assert len(wakes) == 1
    clock.now += EARLY_TICK_GAP / 2
    daemon.on_report(web.uuid, report)
    assert len(wakes) == 2


def test_a_disabled_policy_never_ticks_early(tmp_path: Path) -> None:
    (tmp_path / "off.yaml").write_text(
        "policies:\n  - name: quiet\n    match: {names: ['web']}\n    enabled: false\n"
    )
    host = sim_host()
    daemon = _daemon(host.now, Recording(host), [], 2.0, policy_dir=tmp_path)
    wakes: list[str] = []
    daemon.wake = lambda: wakes.append("wake")
    daemon.tick()
    by_name = {d.name: d.uuid for d in host.domains()}
    daemon.on_report(by_name["web"], GuestReport(seq=1, received_at=host.now(), psi_some=0.9))
    assert wakes == []
    daemon.on_report(by_name["idle"], GuestReport(seq=1, received_at=host.now(), psi_some=0.9))
    assert wakes == ["wake"]


def test_the_assembled_daemon_listens_to_its_agent_hub(tmp_path: Path) -> None:
    daemon = build_daemon("test:///default", LoopSettings(), None, policy_dir_required=False)
    try:
        hubs = [s for s in daemon._reports._sources if isinstance(s, AgentHub)]
        assert len(hubs) == 1 and hubs[0].on_report == daemon.on_report
    finally:
        daemon.close()


def test_the_default_interval_is_two_seconds() -> None:
    from balloond.config import DEFAULT_INTERVAL, DaemonConfig

    assert DEFAULT_INTERVAL == 2.0 == LoopSettings().interval == DaemonConfig().interval


def test_the_debounce_counts_a_clock_that_went_back_as_a_gap_passed() -> None:
    from balloond.daemon.early import Debounce

    gate = Debounce(0.5)
    assert [gate.due(t) for t in (10.0, 10.2, 10.49, 10.5, 10.6, 3.0, 3.1)] == [
        True,
        False,
        False,
        True,
        False,
        True,
        False,
    ]


def test_a_failing_report_listener_does_not_stop_the_channel(tmp_path: Path) -> None:
    path = str(tmp_path / "g.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(10)
    heard: list[int] = []

    def listener(uuid: str, report: GuestReport) -> None:
        heard.append(report.seq)
        raise RuntimeError("listener bug")

    hub = AgentHub(Telemetry(), settings=HubSettings(reconnect_interval=0.05), on_report=listener)
    conn = None
    try:
        hub.sync(
            [DomainSnapshot(name="g", uuid="uuid-g", current=GiB, maxmem=2 * GiB, channel=path)]
        )
        conn, _ = server.accept()
        conn.sendall(_line(1, 0.3))
        _until(lambda: heard == [1], "the first report heard")
        conn.sendall(_line(2, 0.3))
        _until(lambda: heard == [1, 2], "the second report heard after the listener failed")
        assert hub.reports()["uuid-g"].seq == 2
    finally:
        hub.close()
        if conn is not None:
            conn.close()
        server.close()
