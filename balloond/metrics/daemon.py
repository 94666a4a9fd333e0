"""Metric families about the daemon itself, built from a copy of its Telemetry."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from balloond import __version__
from balloond.telemetry import TICK_BUCKETS, Telemetry


def tick_histogram(telemetry: Telemetry) -> HistogramMetricFamily:
    """Telemetry keeps per-bucket counts; Prometheus wants cumulative ones ending in +Inf."""
    buckets: list[tuple[str, float]] = []
    running = 0
    bounds = [*(repr(float(b)) for b in TICK_BUCKETS), "+Inf"]
    for bound, count in zip(bounds, telemetry.tick_bucket_counts, strict=True):
        running += count
        buckets.append((bound, running))
    return HistogramMetricFamily(
        "balloond_tick_duration_seconds",
        "Time one collect-decide-act tick took.",
        buckets=buckets,
        sum_value=telemetry.tick_duration_sum,
    )


def daemon_families(telemetry: Telemetry, names: Mapping[str, str]) -> Iterator[Metric]:
    """`names` maps domain UUIDs to libvirt names, so report counters keyed by UUID still
    carry the `domain` label operators join on."""
    yield InfoMetricFamily("balloond_build", "balloond version.", value={"version": __version__})
    yield GaugeMetricFamily(
        "balloond_start_time_seconds",
        "When the daemon started (epoch).",
        value=telemetry.started_at,
    )
    yield tick_histogram(telemetry)
    yield CounterMetricFamily(
        "balloond_tick_failures", "Ticks that failed.", value=telemetry.tick_failures
    )
    if telemetry.last_tick_at is not None:
        yield GaugeMetricFamily(
            "balloond_last_tick_timestamp_seconds",
            "When the last successful tick ended (epoch).",
            value=telemetry.last_tick_at,
        )
    yield GaugeMetricFamily(
        "balloond_libvirt_up", "1 while the hypervisor connection is up.",
        value=1 if telemetry.libvirt_up else 0,
    )  # fmt: skip
    yield CounterMetricFamily(
        "balloond_libvirt_reconnects", "Times the hypervisor connection came back.",
        value=telemetry.reconnects,
    )  # fmt: skip
    yield CounterMetricFamily(
        "balloond_policy_reloads", "Policy loads and reloads, failed or not.",
        value=telemetry.policy_reloads,
    )  # fmt: skip
    yield CounterMetricFamily(
        "balloond_policy_errors", "Policy loads that failed (the old policies stay in force).",
        value=telemetry.policy_errors,
    )  # fmt: skip
    yield GaugeMetricFamily(
        "balloond_policy_last_load_failed", "1 if the most recent policy load failed.",
        value=1 if telemetry.last_policy_error is not None else 0,
    )  # fmt: skip
    yield from _decision_counters(telemetry)
    yield from _report_counters(telemetry, names)
    yield from _operation_families(telemetry)


def _counter(
    name: str, doc: str, labels: list[str], items: Iterable[tuple[Sequence[str], int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(items):
        family.add_metric(list(key), value)
    return family


def _single(counts: Mapping[str, int]) -> list[tuple[Sequence[str], int]]:
    return [((key,), value) for key, value in counts.items()]


def _decision_counters(telemetry: Telemetry) -> Iterator[Metric]:
    yield _counter(
        "balloond_adjustments", "Balloon targets set, by direction and reason.",
        ["direction", "reason"], telemetry.adjustments.items(),
    )  # fmt: skip
    yield _counter(
        "balloond_adjusted_bytes", "Bytes moved by balloon targets set, by direction.",
        ["direction"], _single(telemetry.bytes_moved),
    )  # fmt: skip
    yield _counter(
        "balloond_adjustment_failures", "Balloon targets that could not be set, by reason.",
        ["reason"], _single(telemetry.failures),
    )  # fmt: skip


def _report_counters(telemetry: Telemetry, names: Mapping[str, str]) -> Iterator[Metric]:
    accepted: dict[str, int] = {}
    for key, count in telemetry.reports_accepted.items():
        label = names.get(key, key)
        accepted[label] = accepted.get(label, 0) + count
    yield _counter(
        "balloond_reports_accepted", "Guest agent reports accepted, by domain.",
        ["domain"], _single(accepted),
    )  # fmt: skip
    yield _counter(
        "balloond_reports_rejected", "Guest agent reports rejected, by reason.",
        ["reason"], _single(telemetry.reports_rejected),
    )  # fmt: skip


def _operation_families(telemetry: Telemetry) -> Iterator[Metric]:
    yield _counter(
        "balloond_operations", "Operator operations (save, restore, migrate, ...) by result.",
        ["operation", "result"], telemetry.operations.items(),
    )  # fmt: skip
    # Telemetry keeps only a window of recent migrations, so a histogram built from it would
    # not be monotonic; expose the latest and the window's worst instead.
    for kind, values in (
        ("duration", telemetry.migration_durations),
        ("downtime", telemetry.migration_downtimes),
    ):
        if not values:
            continue
        yield GaugeMetricFamily(
            f"balloond_migration_last_{kind}_seconds",
            f"Migration {kind} of the most recent successful migration.",
            value=values[-1],
        )
        yield GaugeMetricFamily(
            f"balloond_migration_max_{kind}_seconds",
            f"Longest migration {kind} among the recent successful migrations (up to 100).",
            value=max(values),
        )
