"""A real guest on the primary host: boot, balloon statistics, ballooning, the agent channel
(scenario 1 of the lab issue, before the daemon joins)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("libvirt", reason="the real-VM lab needs libvirt-python")

from balloond.backend.libvirt import LibvirtBackend
from balloond.channels import AgentHub
from balloond.reports import parse_report
from balloond.telemetry import Telemetry
from balloond.units import KiB, MiB
from e2e.guests import AGENT_PORT, Guest
from e2e.lab import Lab
from e2e.wait import wait_for

pytestmark = pytest.mark.realvm


@pytest.fixture(scope="module")
def g1(lab: Lab) -> Iterator[Guest]:
    with lab.guest("g1") as guest:
        yield guest


def test_guest_boots_and_counts(lab: Lab, g1: Guest) -> None:
    assert g1.boot_seconds is not None
    lab.report.record("boot", "seconds_to_ready_line", g1.boot_seconds)
    lab.report.record("boot", "virt_type", lab.virt_type)
    first = wait_for(g1.counter, 30, "the counter's first line")
    wait_for(lambda: g1.counter() >= first + 2, 30, "the counter to advance")
    assert g1.call("ping")["uptime"] > 0


def test_balloon_stats_match_guest_meminfo(lab: Lab, g1: Guest) -> None:
    stats = wait_for(
        lambda: (s := g1.memory_stats()).get("last_update") and s,
        30,
        "balloon statistics (last_update) in memoryStats",
    )
    guest_total = g1.meminfo()["MemTotal"]
    # libvirt's `available` is the guest's MemTotal (KiB); it is refreshed every 2 s.
    assert abs(stats["available"] * KiB - guest_total) <= 4 * MiB
    assert 0 < stats["usable"] <= stats["available"]
    assert stats["actual"] == 512 * KiB


def test_set_memory_shrinks_and_grows_memtotal(lab: Lab, g1: Guest) -> None:
    before = g1.meminfo()["MemTotal"]
    start = time.monotonic()
    g1.set_memory(256 * MiB)
    wait_for(lambda: g1.meminfo()["MemTotal"] <= 256 * MiB, 60, "guest MemTotal <= 256 MiB")
    lab.report.record("balloon", "shrink_512_to_256_seconds", time.monotonic() - start)
    # libvirt's balloon size follows the guest's balloon events, a little after MemTotal.
    wait_for(lambda: g1.current() == 256 * MiB, 30, "libvirt's balloon size at 256 MiB")
    start = time.monotonic()
    g1.set_memory(512 * MiB)
    wait_for(lambda: g1.meminfo()["MemTotal"] >= before - 4 * MiB, 60, "MemTotal back up")
    lab.report.record("balloon", "grow_256_to_512_seconds", time.monotonic() - start)
    wait_for(lambda: g1.current() == 512 * MiB, 30, "libvirt's balloon size at 512 MiB")


def read_agent_lines(g: Guest, count: int, timeout: float) -> list[tuple[float, bytes]]:
    """Connect to the guest agent's channel like the daemon does and read `count` lines."""
    path = g.channel_path(AGENT_PORT)
    lines: list[tuple[float, bytes]] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(path))
        s.settimeout(timeout)
        buf = b""
        while len(lines) < count:
            chunk = s.recv(65536)
            assert chunk, f"agent channel {path} closed"
            buf += chunk
            while b"\n" in buf and len(lines) < count:
                line, buf = buf.split(b"\n", 1)
                lines.append((time.time(), line))
    return lines


def test_agent_reports_over_virtio_serial(lab: Lab, g1: Guest) -> None:
    assert lab.image is not None and lab.image.has_agent, "the image has no guest agent"
    wait_for(lambda: "balloond-e2e: agent on" in g1.console_text(), 60, "the agent to start")
    lines = read_agent_lines(g1, 3, timeout=30)
    reports = []
    prev = None
    for at, line in lines:
        assert json.loads(line)  # one JSON object per line
        report = parse_report(line, maxmem=512 * MiB, now=at, previous_seq=prev)
        prev = report.seq
        reports.append(report)
    guest_total = g1.meminfo()["MemTotal"]
    last = reports[-1]
    assert last.mem_total is not None and abs(last.mem_total - guest_total) <= 4 * MiB
    assert last.mem_available is not None and 0 < last.mem_available <= last.mem_total
    assert [r.seq for r in reports] == sorted({r.seq for r in reports})
    lab.report.record(
        "agent", "report_interval_seconds", (lines[-1][0] - lines[0][0]) / (len(lines) - 1)
    )


def test_agent_report_latency_after_a_memory_spike(lab: Lab, g1: Guest) -> None:
    """Time from a sudden 128 MiB allocation in the guest to the first report on the host
    that shows it (MemAvailable down by at least 96 MiB)."""
    path = g1.channel_path(AGENT_PORT)
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        s.connect(str(path))
        s.settimeout(30)
        reader = s.makefile("rb")
        stack.callback(reader.close)
        first = parse_report(
            reader.readline(), maxmem=512 * MiB, now=time.time(), previous_seq=None
        )
        assert first.mem_available is not None
        started = time.monotonic()
        g1.call("hog", size=128 * MiB, step=128 * MiB, interval=0.1)
        try:
            while True:
                line = reader.readline()
                assert line, "agent channel closed"
                report = parse_report(line, maxmem=512 * MiB, now=time.time(), previous_seq=None)
                assert time.monotonic() - started < 30, "no report showed the allocation"
                if (
                    report.mem_available is not None
                    and report.mem_available <= first.mem_available - 96 * MiB
                ):
                    break
            lab.report.record("agent", "spike_to_host_report_seconds", time.monotonic() - started)
        finally:
            g1.call("unhog")


def test_agent_hub_reads_the_real_guest(lab: Lab, g1: Guest) -> None:
    """The daemon's own pieces, without the daemon: LibvirtBackend finds the channel in the
    live XML, AgentHub connects to it and hands back a sanitised report for the right UUID."""
    with LibvirtBackend(lab.primary.uri) as backend:
        domains = [d for d in backend.domains() if d.name == g1.name]
        assert domains and domains[0].channel, "the backend found no agent channel"
        hub = AgentHub(Telemetry())
        try:
            hub.sync(domains)
            started = time.monotonic()
            report = wait_for(
                lambda: hub.reports().get(domains[0].uuid), 30, "AgentHub to receive a report"
            )
            lab.report.record(
                "agent", "hub_connect_to_first_report_seconds", time.monotonic() - started
            )
        finally:
            hub.close()
    assert report.mem_total is not None
    assert abs(report.mem_total - g1.meminfo()["MemTotal"]) <= 4 * MiB
