"""The metrics and `balloonctl top` over the real daemon (balloond.daemon) on a simulated
host: the wiring the daemon uses, not a stand-in view."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from balloond.backend.simulated import SimulatedHost, open_simulated
from balloond.cli.ctl_top import control_fetch, render
from balloond.daemon.assemble import build_daemon
from balloond.daemon.commands import handlers
from balloond.daemon.control import ControlServer
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.metrics import serve, write_textfile
from balloond.policy.model import Amount
from balloond.units import MiB

URI = "sim://default?clock=manual"


@pytest.fixture
def daemon() -> Iterator[tuple[Daemon, SimulatedHost]]:
    host = open_simulated(URI)
    running = build_daemon(
        "sim://default",
        LoopSettings(interval=10.0, reserve=Amount(size=512 * MiB)),
        None,
        clock=host.now,
        connect=lambda: host,
        channels=False,
        policy_dir_required=False,
    )
    for _ in range(4):
        host.advance(10.0)
        running.tick()
    try:
        yield running, host
    finally:
        running.close()


def parse(body: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_scrape_of_the_real_daemon(daemon: tuple[Daemon, SimulatedHost]) -> None:
    running, host = daemon
    server = serve(running, "127.0.0.1", 0)  # no clock given: the daemon's own is used
    try:
        with urllib.request.urlopen(server.url, timeout=30) as answer:
            scraped = parse(answer.read())
    finally:
        server.close()
    snapshot = running.last_snapshot()
    assert snapshot is not None
    names = {d.name for d in snapshot.domains}
    assert {labels["domain"] for labels, _ in scraped["balloond_domain_info"]} == names
    assert {labels["domain"] for labels, _ in scraped["balloond_domain_target_bytes"]} == names
    assert scraped["balloond_libvirt_up"] == [({}, 1.0)]
    assert scraped["balloond_tick_duration_seconds_count"] == [({}, 4.0)]
    assert scraped["balloond_last_tick_timestamp_seconds"] == [({}, host.now())]
    # Ages are on the simulated clock: small and never negative.
    ages = [value for _, value in scraped.get("balloond_domain_report_age_seconds", [])]
    assert all(0 <= age <= 60 for age in ages)


def test_textfile_of_the_real_daemon(daemon: tuple[Daemon, SimulatedHost], tmp_path: Path) -> None:
    running, _ = daemon
    target = tmp_path / "balloond.prom"
    write_textfile(running, target)
    assert "balloond_host_reclaimed_bytes" in parse(target.read_bytes())


def test_top_over_the_real_control_socket(
    daemon: tuple[Daemon, SimulatedHost], tmp_path: Path
) -> None:
    running, _ = daemon
    path = tmp_path / "control.sock"
    server = ControlServer(path, handlers(running, lambda: {}))
    try:
        frame = control_fetch(str(path))()
    finally:
        server.close()
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(render(frame, sort="name"))
    text = console.export_text()
    snapshot = running.last_snapshot()
    assert snapshot is not None
    for domain in snapshot.domains:
        assert domain.name in text
    assert "sim://default" in text and "libvirt up" in text
