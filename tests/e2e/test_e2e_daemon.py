"""The real daemon (`balloond run`) balancing a real guest on the primary host: scenarios 1-3
of the lab issue (the report reaches the daemon; an idle guest shrinks to its floor and no
further; a growing workload gets memory before the guest runs out)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("libvirt", reason="the real-VM lab needs libvirt-python")

from balloond.units import MiB
from e2e.daemon import Balloond
from e2e.guests import Guest
from e2e.lab import Lab
from e2e.prom import Prometheus, dashboard_queries_without
from e2e.wait import wait_for

pytestmark = pytest.mark.realvm

FLOOR = 256 * MiB  # the lab policy's floor: 50% of 512 MiB
MAXMEM = 512 * MiB


@pytest.fixture(scope="module")
def daemon(lab: Lab) -> Iterator[Balloond]:
    d = lab.daemon("primary")
    yield d
    d.stop()


@pytest.fixture(scope="module")
def d1(lab: Lab, daemon: Balloond) -> Iterator[Guest]:
    with lab.guest("d1") as guest:
        yield guest


def test_daemon_shows_the_agents_report(lab: Lab, daemon: Balloond, d1: Guest) -> None:
    """Scenario 1: the agent's report travels virtio-serial -> AgentHub -> the daemon."""
    start = time.monotonic()
    age = wait_for(
        lambda: (
            (a := daemon.metric("balloond_domain_report_age_seconds", domain=d1.name)) is not None
            and a < 10
            and (a,)
        ),
        90,
        f"balloond to show a fresh report from {d1.name}",
    )
    lab.report.record(
        "agent",
        "boot_to_first_report_at_daemon_seconds",
        (d1.boot_seconds or 0) + time.monotonic() - start,
    )
    assert 0 <= age[0] < 10
    accepted = daemon.metric("balloond_reports_accepted_total", domain=d1.name)
    if accepted is None:
        accepted = daemon.metric("balloond_reports_accepted_total")
    assert accepted is not None and accepted >= 1
    listed = daemon.ctl("list", "--json")
    assert listed.returncode == 0, listed.stderr
    text = json.dumps(json.loads(listed.stdout))
    assert d1.name in text


def test_idle_guest_shrinks_to_its_floor_and_no_further(
    lab: Lab, daemon: Balloond, d1: Guest
) -> None:
    """Scenario 2: an idle 512 MiB guest is shrunk toward its 256 MiB floor, never below it,
    never above maxmem; its MemTotal inside follows."""
    seen: list[int] = []

    def at_floor() -> bool:
        seen.append(d1.current())
        return seen[-1] <= FLOOR + 8 * MiB

    wait_for(at_floor, 120, f"{d1.name} shrunk to its floor {FLOOR >> 20} MiB")
    # The daemon may have got there during the previous test: this bounds it from above.
    lab.report.record(
        "daemon",
        "idle_512_to_floor_within_seconds_of_ready",
        time.monotonic() - d1.created_at - (d1.boot_seconds or 0),
    )

    # Hold still for several ticks: the daemon must not go below the floor.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        seen.append(d1.current())
        time.sleep(0.5)
    assert min(seen) >= FLOOR, f"went below the floor: {min(seen) >> 20} MiB"
    assert max(seen) <= MAXMEM
    inside = d1.meminfo()["MemTotal"]
    assert inside <= FLOOR, f"guest MemTotal {inside >> 20} MiB did not follow the balloon"
    floor_metric = daemon.metric("balloond_domain_floor_bytes", domain=d1.name)
    assert floor_metric == FLOOR


def test_pressure_grows_the_balloon_before_the_guest_runs_out(
    lab: Lab, daemon: Balloond, d1: Guest
) -> None:
    """Scenario 3: a workload grows by 4 MiB a second to 192 MiB inside a guest at its
    256 MiB floor (about 140 MiB available): without the daemon it would be OOM-killed.
    (At 8 MiB/s it is a race: the daemon starts granting when demand + 20% passes the balloon,
    ~34 MiB before the guest is out, and report + tick + balloon take ~3-4 s.)"""
    before = d1.current()
    size = 192 * MiB
    started = time.monotonic()
    d1.call("hog", size=size, step=4 * MiB, interval=1.0)
    pressure_seen: list[float] = []

    def granted() -> bool:
        if (
            not pressure_seen
            and (daemon.metric("balloond_domain_pressure_some_ratio", domain=d1.name) or 0) > 0
        ):
            pressure_seen.append(time.monotonic())
        if d1.current() >= before + 16 * MiB:
            return True
        status = d1.call("hog_status")
        assert status["alive"], (
            f"the workload was killed (OOM) at {status['allocated'] >> 20}"
            f" MiB before {d1.name} was granted 16 MiB"
        )
        return False

    wait_for(granted, 90, f"{d1.name} to be granted memory")
    granted_at = time.monotonic()
    lab.report.record("daemon", "workload_start_to_first_grant_seconds", granted_at - started)
    if pressure_seen:
        lab.report.record(
            "daemon", "pressure_in_metrics_to_first_grant_seconds", granted_at - pressure_seen[0]
        )

    def allocated() -> bool:
        status = d1.call("hog_status")
        assert status["alive"], f"the workload died (OOM?): {status}"
        return bool(status["allocated"] >= size)

    wait_for(allocated, 120, f"the workload in {d1.name} to hold {size >> 20} MiB")
    lab.report.record("daemon", "workload_fully_allocated_seconds", time.monotonic() - started)
    inside = d1.meminfo()
    assert inside["MemTotal"] > size, "MemTotal inside the guest did not follow"
    assert d1.current() <= MAXMEM
    assert "Out of memory" not in d1.console_text()
    d1.call("unhog")


def test_daemon_rides_out_a_libvirtd_crash(lab: Lab, daemon: Balloond, d1: Guest) -> None:
    """Scenario 7: libvirtd is killed (SIGKILL) and restarted under a running daemon: the
    daemon notices, reconnects, its metrics show the outage, and nothing goes below the floor;
    the guest keeps running throughout."""
    if not lab.primary.owned:
        pytest.skip("the primary libvirtd was already running (not ours to kill)")
    reconnects = daemon.metric("balloond_libvirt_reconnects_total") or 0.0
    assert daemon.metric("balloond_libvirt_up") == 1
    killed = time.monotonic()
    lab.primary.kill_libvirtd()
    wait_for(
        lambda: daemon.metric("balloond_libvirt_up") == 0,
        60,
        "balloond_libvirt_up to show the outage",
    )
    lab.report.record(
        "libvirtd_restart", "outage_seen_in_metrics_seconds", time.monotonic() - killed
    )
    before = d1.counter()
    wait_for(lambda: d1.counter() > before, 30, "the guest to keep running without libvirtd")
    restarted = time.monotonic()
    lab.primary.start_libvirtd()
    wait_for(
        lambda: (
            daemon.metric("balloond_libvirt_up") == 1
            and (daemon.metric("balloond_libvirt_reconnects_total") or 0) > reconnects
        ),
        90,
        "balloond to reconnect to the restarted libvirtd",
    )
    lab.report.record(
        "libvirtd_restart", "restart_to_reconnected_seconds", time.monotonic() - restarted
    )
    assert d1.dom().isActive()
    seen = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        seen.append(d1.current())
        time.sleep(0.5)
    assert min(seen) >= FLOOR
    listed = json.loads(daemon.ctl("list", "--json").stdout)
    assert d1.name in [row["name"] for row in listed]


def test_prometheus_scrapes_the_dashboards_series(lab: Lab, daemon: Balloond, d1: Guest) -> None:
    """Scenario 8: Debian's Prometheus scrapes the daemon; every query of the shipped Grafana
    dashboard is valid PromQL there, and the per-domain ones return the guest's series."""
    prom = Prometheus([f"127.0.0.1:{daemon.port}"])
    started = time.monotonic()
    prom.start()
    try:
        wait_for(
            lambda: any(
                r["metric"].get("domain") == d1.name
                for r in prom.query("balloond_domain_current_bytes")
            ),
            90,
            f"prometheus to have {d1.name}'s series",
        )
        lab.report.record(
            "prometheus", "start_to_first_domain_series_seconds", time.monotonic() - started
        )
        instances = prom.api("label/instance/values", **{"match[]": "balloond_domain_info"})
        assert f"127.0.0.1:{daemon.port}" in instances
        checked, empty = dashboard_queries_without(prom, d1.name)
        assert not empty, f"dashboard queries without {d1.name}'s series: {empty}"
        lab.report.record("prometheus", "dashboard_queries_checked", checked)
    finally:
        prom.stop()
