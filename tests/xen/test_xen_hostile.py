"""Scenario 6 of the Xen lab issue: a hostile PV domU writes garbage, huge values and floods
to its own xenstore report path and tries another domain's; the daemon keeps ticking, the
other domains' decisions do not move, and the rejections are counted in its metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("libvirt", reason="the Xen lab needs libvirt-python")

from e2e.guests import MiB
from e2e.wait import wait_for
from e2e.xen.daemon import Dom0Balloond
from e2e.xen.guests import XenGuest
from e2e.xen.lab import XenLab

REPORT = "data/balloond/report"


@pytest.fixture(scope="module")
def hostile(xenlab: XenLab) -> Iterator[XenGuest]:
    with xenlab.guest("h", agent=False) as guest:  # no agent: the test writes its reports
        yield guest


def _rejected(daemon: Dom0Balloond) -> dict[str, float]:
    return {
        dict(labels).get("reason", ""): value
        for (name, labels), value in daemon.metrics().items()
        if name == "balloond_reports_rejected_total"
    }


def _decisions(daemon: Dom0Balloond, names: list[str]) -> dict[str, tuple[int, str, int]]:
    """{name: (target, reason, balloon size now)}."""
    rows = {n: daemon.row(n) for n in names}
    return {n: (rows[n]["target"], rows[n]["reason"], rows[n]["mem"]) for n in names}


def _same(before: tuple[int, str, int], after: tuple[int, str, int]) -> bool:
    """Nothing the hostile domain did grew this one. A domain whose held workload peak is
    still decaying after scenario 3 goes on shrinking on its own (seen: 270 -> 251 MiB)."""
    return after[0] <= before[0] + 4 * MiB


def test_a_hostile_domu_moves_nobody_else(
    xenlab: XenLab, daemon: Dom0Balloond, pair: tuple[XenGuest, XenGuest], hostile: XenGuest
) -> None:
    others = [g.name for g in pair]
    # The others settled first (b's workload is gone; it shrinks back to its floor).
    seen: list[dict[str, tuple[int, str, int]]] = []

    def settled() -> bool:
        seen.append(_decisions(daemon, others))
        # Idle a settles at its floor; b may still be shrinking its decaying workload peak.
        target, reason, mem = seen[-1][pair[0].name]
        return reason in ("steady", "floor") and abs(target - mem) <= 8 * MiB

    wait_for(settled, 120, "a settled at its floor")
    before = _decisions(daemon, others)
    rejected = _rejected(daemon)
    victim = pair[0]
    # Writes balloond's own agent could never send, each an attack on the parser.
    bad = {
        "garbage": "{{{ not json",
        "nested": '{"v":1,"type":"report","seq":5,"x":[[[[[[[[[[1]]]]]]]]]]}',
        "huge": json.dumps({"v": 1, "type": "report", "seq": 7, "demand": 2**62}),
        "wrong version": json.dumps({"v": 2, "type": "report", "seq": 8}),
        "nan": '{"v":1,"type":"report","seq":9,"mem_total":NaN}',
    }
    for what, value in bad.items():
        out = hostile.call("xs", op="write", path=REPORT, value=value)
        assert out["results"] == {"ok": 1}, (what, out)  # xenstore takes it; the daemon judges
        daemon.wait_ticks(2.0)  # the daemon read it (one tick) and goes on
    # Larger than any report, and a flood: xenstored itself limits what a guest may write.
    big = hostile.call("xs", op="write", path=REPORT, value_bytes=5000)["results"]
    flood = hostile.call("xs", op="write", path=REPORT, value="x" * 64, repeat=2000, wait=120)
    xenlab.report.record("hostile", "oversized write", json.dumps(big))
    xenlab.report.record("hostile", "2000-write flood", json.dumps(flood["results"]))
    xenlab.report.record("hostile", "flood seconds", round(flood["seconds"], 2))
    # Another domain's report, its target, and dom0's paths: xenstored refuses them all.
    for path in (
        f"/local/domain/{victim.domid}/{REPORT}",
        f"/local/domain/{victim.domid}/memory/target",
        f"/local/domain/{hostile.domid}/memory/target",
        "/local/domain/0/data/balloond/report",
    ):
        fake = json.dumps({"v": 1, "type": "report", "seq": 2**40, "demand": 1})
        out = hostile.call("xs", op="write", path=path, value=fake)["results"]
        assert out == {"EACCES": 1}, (path, out)
    assert (daemon.explain(victim.name)["report"] or {}).get("demand") != 1
    # The daemon kept ticking throughout and judged every line: counted by reason.
    daemon.wait_ticks(2.0)
    after = _rejected(daemon)
    grew = {r for r in after if after[r] > rejected.get(r, 0.0)}
    assert {"bad_json", "out_of_range", "version", "bad_field"} <= grew, (rejected, after)
    counted = {r: after[r] - rejected.get(r, 0.0) for r in sorted(grew)}
    xenlab.report.record("hostile", "rejections by reason", json.dumps(counted))
    after = _decisions(daemon, others)
    assert all(_same(before[n], after[n]) for n in others), (before, after)
    idle = pair[0].name  # at its floor since scenario 2 (released after scenario 5)
    assert after[idle][:2] == before[idle][:2], (before, after)
    assert daemon.explain(hostile.name)["report"] is None  # nothing it wrote was accepted
    assert daemon.metric("balloond_libvirt_up") == 1
    # A well-formed report in its own path is this domain's, and only its: identity is the
    # path. How long it takes to reach the daemon is the report latency over xenstore.
    valid = {
        "v": 1,
        "type": "report",
        "seq": 1,
        "agent": "lab-valid-from-h",
        "mem_total": hostile.meminfo()["MemTotal"],
        "demand": 80 * 1024 * 1024,
    }
    written = time.monotonic()
    out = hostile.call("xs", op="write", path=REPORT, value=json.dumps(valid))
    assert out["results"] == {"ok": 1}
    wait_for(
        lambda: daemon.metric("balloond_domain_report_age_seconds", domain=hostile.name),
        30,
        "the daemon to accept h's well-formed report",
        interval=0.1,
    )
    xenlab.report.record("xenstore", "guest write -> daemon accepted s", time.monotonic() - written)
    shown = daemon.explain(hostile.name)["report"] or {}
    assert shown.get("agent_version") == "lab-valid-from-h", shown
    for guest in pair:
        report = daemon.explain(guest.name)["report"] or {}
        assert str(report.get("agent_version")).startswith("balloond-guest/"), report
