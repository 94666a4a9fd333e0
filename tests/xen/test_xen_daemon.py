"""balloond in dom0 balancing PV domUs on xen:///system: scenarios 1-4 and 7 of the Xen lab
issue (reports over xenstore, idle shrink to the floor, growth under a workload, the guest's
own balloon target, metrics scraped from outside dom0)."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("libvirt", reason="the Xen lab needs libvirt-python")

from e2e.guests import MiB
from e2e.prom import Prometheus, dashboard_queries_without
from e2e.wait import wait_for
from e2e.xen.daemon import Dom0Balloond
from e2e.xen.guests import XenGuest
from e2e.xen.lab import XenLab

FLOOR = 192 * MiB  # e2e/xen/dom0/lab-policy.yaml
MAXMEM = 512 * MiB
REPORT = "data/balloond/report"


def _report(daemon: Dom0Balloond, guest: XenGuest) -> dict[str, object] | None:
    report: dict[str, object] | None = daemon.explain(guest.name)["report"]
    return report


def test_agent_reports_over_xenstore_identity_from_the_path(
    xenlab: XenLab, daemon: Dom0Balloond, pair: tuple[XenGuest, XenGuest]
) -> None:
    """Scenario 1: each domU's agent writes its report to its own data/balloond/report;
    the daemon shows it for that domain, and only the xenstore path says whose it is."""
    a, b = pair
    started = time.monotonic()
    for guest in pair:
        wait_for(lambda g=guest: _report(daemon, g), 90, f"balloond to show {guest.name}'s report")
    took = time.monotonic() - started
    xenlab.report.record("xenstore", "first report at the daemon after ready s", took)
    for guest in pair:
        raw = daemon.host.xenstore_read(f"/local/domain/{guest.domid}/{REPORT}")
        assert raw is not None and json.loads(raw)["type"] == "report"
    # Identity is the path: what the daemon shows for each domain is the report in that
    # domain's own path (the same seq or, a tick later, the next). A report written by one
    # domain and shown for it only: the hostile domain's test (test_xen_hostile.py).
    seqs = {}
    for guest in pair:
        path = f"/local/domain/{guest.domid}/{REPORT}"
        before = json.loads(daemon.host.xenstore_read(path) or "{}")
        shown = _report(daemon, guest)
        after = json.loads(daemon.host.xenstore_read(path) or "{}")
        assert shown is not None
        seqs[guest.name] = int(shown["seq"])  # type: ignore[call-overload]
        # The agent writes every 2 s: the daemon shows one read between the two reads here
        # (or the one just before the first).
        assert before["seq"] - 1 <= seqs[guest.name] <= after["seq"], (before, shown, after)
    assert seqs[a.name] != seqs[b.name]


def test_idle_domu_shrinks_to_its_floor_and_the_guest_follows(
    xenlab: XenLab, daemon: Dom0Balloond, pair: tuple[XenGuest, XenGuest]
) -> None:
    """Scenario 2: idle domU a is shrunk toward its floor, never below it, never above
    maxmem; the guest's own target_kb and MemTotal follow what Xen was told."""
    a = pair[0]
    seen: list[int] = []

    def settled() -> bool:
        seen.append(a.current())
        return seen[-1] <= FLOOR + 16 * MiB

    wait_for(settled, 120, f"{a.name} shrunk to its floor", interval=0.5)
    ready_at = a.created_at + (a.boot_seconds or 0.0)  # 512 MiB at its ready line
    took = time.monotonic() - ready_at
    xenlab.report.record("daemon", "idle domU ready -> at its floor (<=) s", took)
    assert min(seen) >= FLOOR and max(seen) <= MAXMEM
    # Xen told the guest (xenstore memory/target, which libxl writes, in KiB) and the
    # guest's own balloon driver took it: its sysfs target equals it, its MemTotal follows.
    # (Xen's current allocation may stop a few MiB short of the target: pages the guest
    # could not give back at once.)
    told = wait_for(
        lambda: (
            (t := daemon.host.xenstore_read(f"/local/domain/{a.domid}/memory/target"))
            and int(t) == a.target_kb()
            and int(t) * 1024
        ),
        30,
        f"{a.name}'s target_kb to equal its xenstore memory/target",
    )
    assert FLOOR <= told <= FLOOR + 16 * MiB
    assert abs(a.current() - told) <= 16 * MiB
    # The guest's MemTotal (without the kernel's own reservations) is inside its balloon.
    assert a.meminfo()["MemTotal"] <= told
    row = daemon.row(a.name)
    assert row["floor"] == FLOOR and row["mem"] >= FLOOR


def test_guest_sets_its_own_balloon_target_within_the_policy(
    xenlab: XenLab, daemon: Dom0Balloond, pair: tuple[XenGuest, XenGuest]
) -> None:
    """Scenario 4, the Xen manual's self-ballooning: in domU a, `balloond-guest target SIZE`
    writes the guest's own target (sysfs target_kb on this kernel) and the balloon moves;
    the daemon keeps that size (self_adjust) within the policy's floor, and says so."""
    a = pair[0]
    wait_for(lambda: a.current() <= FLOOR + 16 * MiB, 120, f"{a.name} at its floor")
    started = time.monotonic()
    out = a.call("run", argv=["balloond-guest", "target", "320M"])
    assert out["rc"] == 0, out
    assert "target_kb" in out["stdout"] and "request" in out["stdout"], out["stdout"]
    wait_for(lambda: abs(a.current() - 320 * MiB) <= 4 * MiB, 60, f"{a.name}'s balloon at 320 MiB")

    def kept() -> dict[str, object] | None:
        # The reason is `guest_request` on the tick that moves the domain to the request,
        # `steady` (guest requests ...) on the ticks that keep it there.
        text = daemon.ctl("explain", a.name)["stdout"]
        decision = daemon.explain(a.name)["decision"]
        return decision if decision and "guest requests 320 MiB" in text else None

    decision = wait_for(kept, 60, "the daemon to take a's own target as its request")
    took = time.monotonic() - started
    xenlab.report.record("self-adjust", "target 320M -> daemon keeps it s", took)
    assert decision["target"] == 320 * MiB  # type: ignore[index]
    # Not undone a few ticks later (a is idle: without the request it would shrink).
    daemon.wait_ticks()
    assert abs(a.current() - 320 * MiB) <= 4 * MiB
    # Below the policy's floor (the agent's own safe floor is 128M): the guest moves, the
    # daemon takes the domain back to its floor and explains why.
    started = time.monotonic()
    out = a.call("run", argv=["balloond-guest", "target", "160M"])
    assert out["rc"] == 0, out
    wait_for(
        lambda: a.current() >= FLOOR and daemon.explain(a.name)["decision"]["target"] == FLOOR,
        60,
        f"the daemon to take {a.name} back to its floor",
    )
    took = time.monotonic() - started
    xenlab.report.record("self-adjust", "target 160M -> back at floor s", took)
    wait_for(lambda: a.target_kb() * 1024 == FLOOR, 30, "the guest's target_kb at the floor")
    text = daemon.ctl("explain", a.name)["stdout"]
    assert "floor" in text, text
    out = a.call("run", argv=["balloond-guest", "target", "auto"])
    assert out["rc"] == 0, out


def test_workload_grows_the_domu_before_it_runs_out(
    xenlab: XenLab, daemon: Dom0Balloond, pair: tuple[XenGuest, XenGuest]
) -> None:
    """Scenario 3: a workload in domU b grows by 2 MiB a second to 192 MiB; b (shrunk to
    its 192 MiB floor, about 70 MiB available under this PV kernel) would be OOM-killed
    without a grant. (At 4 MiB/s it is a race: the policy grows b once demand + 20% + the
    overhead passes the balloon, ~40 MiB into the workload, and the fresh-clone run lost it
    once at 52 MiB.)"""
    b = pair[1]
    wait_for(lambda: b.current() <= FLOOR + 64 * MiB, 120, f"{b.name} shrunk while idle")
    before = b.current()
    size = 192 * MiB
    started = time.monotonic()
    b.call("hog", size=size, step=2 * MiB, interval=1.0)

    def granted() -> bool:
        if b.current() >= before + 16 * MiB:
            return True
        status = b.call("hog_status")
        assert status["alive"], f"the workload died at {status['allocated'] >> 20} MiB: {status}"
        return False

    wait_for(granted, 120, f"{b.name} to be granted memory", interval=0.5)
    xenlab.report.record("daemon", "workload start -> first grant s", time.monotonic() - started)

    def allocated() -> bool:
        status = b.call("hog_status")
        assert status["alive"], f"the workload died (OOM?): {status}"
        return bool(status["allocated"] >= size)

    wait_for(allocated, 180, f"the workload in {b.name} to hold {size >> 20} MiB", interval=1.0)
    xenlab.report.record("daemon", "workload fully allocated s", time.monotonic() - started)
    assert b.meminfo()["MemTotal"] > size
    assert b.current() <= MAXMEM
    assert "Out of memory" not in b.console_text()
    b.call("unhog")


def test_metrics_scraped_from_outside_dom0(
    xenlab: XenLab, daemon: Dom0Balloond, pair: tuple[XenGuest, XenGuest]
) -> None:
    """Scenario 7: Debian's Prometheus on this machine scrapes the daemon in dom0 through
    the forwarded port, as a Prometheus elsewhere would; the shipped dashboard's per-domain
    queries return the domUs' series."""
    target = daemon.host.metrics_url.removeprefix("http://").removesuffix("/metrics")
    for guest in pair:
        assert daemon.metric("balloond_domain_current_bytes", domain=guest.name) is not None
    assert daemon.metric("balloond_libvirt_up") == 1
    prom = Prometheus([target])
    started = time.monotonic()
    prom.start()
    try:
        wait_for(
            lambda: (
                {r["metric"].get("domain") for r in prom.query("balloond_domain_current_bytes")}
                >= {g.name for g in pair}
            ),
            90,
            "prometheus to have both domUs' series",
        )
        xenlab.report.record("prometheus", "start -> domU series s", time.monotonic() - started)
        for guest in pair:
            checked, empty = dashboard_queries_without(prom, guest.name)
            assert not empty, f"dashboard queries without {guest.name}'s series: {empty}"
        xenlab.report.record("prometheus", "dashboard queries checked", checked)
    finally:
        prom.stop()
