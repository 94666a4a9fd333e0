"""Every counter whose label values are known at start is exported from the start, at 0.

Prometheus' instrumentation guide: a series that appears only when its first event happens
makes `increase()` miss that event (the first sample has nothing before it) and leaves
dashboards saying "no data" instead of 0. So each labelled counter exports every label set
listed in balloond.telemetry from the first scrape, and every label value the code records
must be in those lists (a new failure reason added without it fails here).
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from balloond import telemetry
from balloond.daemon.commands import OPERATIONS, RESULTS
from balloond.metrics.static import StaticView
from balloond.units import GiB
from tests.support.views import scrape

SOURCE = Path(__file__).resolve().parent.parent / "balloond"


def _samples(body: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_a_fresh_daemon_exports_every_known_counter_at_zero() -> None:
    samples = _samples(scrape(StaticView(uri="test:///default", reserve=GiB)))
    expected = {
        "balloond_adjustment_failures_total": [{"reason": r} for r in telemetry.FAILURE_REASONS],
        "balloond_reports_rejected_total": [{"reason": r} for r in telemetry.REPORT_REJECT_REASONS],
        "balloond_adjusted_bytes_total": [{"direction": d} for d in telemetry.DIRECTIONS],
        "balloond_adjustments_total": [
            {"direction": d, "reason": r}
            for d in telemetry.DIRECTIONS
            for r in telemetry.ADJUSTMENT_REASONS
        ],
        "balloond_operations_total": [
            {"operation": o, "result": r}
            for o in telemetry.OPERATIONS
            for r in telemetry.OPERATION_RESULTS
        ],
    }
    for name, label_sets in expected.items():
        got = samples.get(name, [])
        assert sorted(map(sorted, (labels.items() for labels, _ in got))) == sorted(
            map(sorted, (labels.items() for labels in label_sets))
        ), name
        assert all(value == 0 for _, value in got), name
    for name in ("balloond_tick_failures_total", "balloond_policy_errors_total"):
        assert samples[name] == [({}, 0.0)], name


def test_a_counter_keeps_counting_what_happened() -> None:
    view = StaticView(uri="test:///default", reserve=GiB)
    view.counters.record_failure("set_target")
    samples = _samples(scrape(view))["balloond_adjustment_failures_total"]
    assert ({"reason": "set_target"}, 1.0) in samples
    assert ({"reason": "connection_lost"}, 0.0) in samples


def _literals(pattern: str) -> set[str]:
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        found |= set(re.findall(pattern, path.read_text(encoding="utf-8")))
    return found


def test_every_failure_reason_recorded_is_a_known_one() -> None:
    recorded = _literals(r'record_failure\(\s*"([a-z_]+)"')
    assert recorded and recorded <= set(telemetry.FAILURE_REASONS), recorded


def test_every_report_rejection_reason_is_a_known_one() -> None:
    raised = _literals(r'ReportRejected\(\s*"([a-z_]+)"')
    raised |= _literals(r'record_report\([^,()]+,\s*"([a-z_]+)"')
    assert raised and raised <= set(telemetry.REPORT_REJECT_REASONS), raised - set(
        telemetry.REPORT_REJECT_REASONS
    )


def test_operations_the_control_socket_counts_are_the_known_ones() -> None:
    assert set(telemetry.OPERATIONS) == OPERATIONS
    assert set(telemetry.OPERATION_RESULTS) == RESULTS
