"""Metric families about the daemon itself, built from a copy of its Telemetry."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from balloond import __version__
from balloond.metrics.families import Family, Labels, counter, gauge
from balloond.telemetry import (
    ADJUSTMENT_REASONS,
    DIRECTIONS,
    FAILURE_REASONS,
    OPERATION_RESULTS,
    OPERATIONS,
    REPORT_REJECT_REASONS,
    TICK_BUCKETS,
    Telemetry,
)


def tick_histogram(telemetry: Telemetry) -> Family:
    """Telemetry keeps per-bucket counts; Prometheus wants cumulative ones ending in +Inf."""
    family = Family(
        "balloond_tick_duration_seconds",
        "Time one collect-decide-act tick took.",
        "histogram",
        sum_value=telemetry.tick_duration_sum,
    )
    running = 0
    bounds = [*(repr(float(b)) for b in TICK_BUCKETS), "+Inf"]
    for bound, count in zip(bounds, telemetry.tick_bucket_counts, strict=True):
        running += count
        family.add((bound,), running)
    return family


def daemon_families(telemetry: Telemetry, names: Mapping[str, str]) -> Iterator[Family]:
    """`names` maps domain UUIDs to libvirt names, so report counters keyed by UUID still
    carry the `domain` label operators join on."""
    t = telemetry
    build = gauge(
        "balloond_build_info", "Constant 1, labelled with balloond's version.", ("version",)
    )
    build.add((__version__,), 1)
    yield build
    yield gauge(
        "balloond_start_time_seconds", "When the daemon started (epoch).", value=t.started_at
    )
    yield tick_histogram(t)
    yield counter("balloond_tick_failures", "Ticks that failed.", value=t.tick_failures)
    # 0 until the first tick ends: a daemon whose first tick never ends is as stale as one
    # whose ticks stopped (the series must exist for the alert to see either).
    yield gauge(
        "balloond_last_tick_timestamp_seconds",
        "When the last successful tick ended (epoch; 0 before the first).",
        value=t.last_tick_at or 0,
    )
    yield gauge(
        "balloond_libvirt_up",
        "1 while the hypervisor connection is up.",
        value=1 if t.libvirt_up else 0,
    )
    yield counter(
        "balloond_libvirt_reconnects",
        "Times the hypervisor connection came back.",
        value=t.reconnects,
    )
    yield counter(
        "balloond_policy_reloads",
        "Policy loads and reloads, failed or not.",
        value=t.policy_reloads,
    )
    yield counter(
        "balloond_policy_errors",
        "Policy loads that failed (the old policies stay in force).",
        value=t.policy_errors,
    )
    yield gauge(
        "balloond_policy_last_load_failed",
        "1 if the most recent policy load failed.",
        value=1 if t.last_policy_error is not None else 0,
    )
    yield counter(
        "balloond_state_write_failures",
        "State file writes that failed (holds and marks not saved for a restart).",
        value=t.state_write_failures,
    )
    yield gauge(
        "balloond_state_last_write_failed",
        "1 if the most recent state file write failed.",
        value=1 if t.last_state_error is not None else 0,
    )
    yield from _decision_counters(t)
    yield from _report_counters(t, names)
    yield from _operation_families(t)


def _counter(
    name: str,
    doc: str,
    labelnames: Labels,
    items: Iterable[tuple[Labels, int]],
    known: Iterable[Labels] = (),
) -> Family:
    """A labelled counter: every `known` label set from the start (0 until it happens),
    and any other that happened."""
    family = counter(name, doc, labelnames)
    counts = dict.fromkeys(known, 0)
    counts.update(items)
    family.samples.extend(sorted(counts.items()))
    return family


def _single(counts: Mapping[str, int]) -> list[tuple[Labels, int]]:
    return [((key,), value) for key, value in counts.items()]


def _decision_counters(telemetry: Telemetry) -> Iterator[Family]:
    yield _counter(
        "balloond_adjustments",
        "Balloon targets set, by direction and reason.",
        ("direction", "reason"),
        telemetry.adjustments.items(),
        [(direction, reason) for direction in DIRECTIONS for reason in ADJUSTMENT_REASONS],
    )
    yield _counter(
        "balloond_adjusted_bytes",
        "Bytes moved by balloon targets set, by direction.",
        ("direction",),
        _single(telemetry.bytes_moved),
        [(direction,) for direction in DIRECTIONS],
    )
    yield _counter(
        "balloond_adjustment_failures",
        "Balloon targets that could not be set, by reason.",
        ("reason",),
        _single(telemetry.failures),
        [(reason,) for reason in FAILURE_REASONS],
    )


def _by_name(counts: Mapping[str, int], names: Mapping[str, str]) -> dict[str, int]:
    """Counts keyed by domain UUID (or name) summed by the `domain` label operators join on."""
    labelled: dict[str, int] = {}
    for key, count in counts.items():
        label = names.get(key, key)
        labelled[label] = labelled.get(label, 0) + count
    return labelled


def _report_counters(telemetry: Telemetry, names: Mapping[str, str]) -> Iterator[Family]:
    yield _counter(
        "balloond_reports_accepted",
        "Guest agent reports accepted, by domain.",
        ("domain",),
        _single(_by_name(telemetry.reports_accepted, names)),
    )
    yield _counter(
        "balloond_reports_rejected",
        "Guest agent reports rejected, by reason.",
        ("reason",),
        _single(telemetry.reports_rejected),
        [(reason,) for reason in REPORT_REJECT_REASONS],
    )
    yield _counter(
        "balloond_channel_cutoffs",
        "Agent channels cut off for sending more than their byte budget, by domain.",
        ("domain",),
        _single(_by_name(telemetry.channel_cutoffs, names)),
        [(name,) for name in names.values()],
    )


def _operation_families(telemetry: Telemetry) -> Iterator[Family]:
    yield _counter(
        "balloond_operations",
        "Operator operations (save, restore, migrate, ...) by result.",
        ("operation", "result"),
        telemetry.operations.items(),
        [(operation, result) for operation in OPERATIONS for result in OPERATION_RESULTS],
    )
    # Telemetry keeps only a window of recent migrations, so a histogram built from it would
    # not be monotonic; expose the latest and the window's worst instead.
    for kind, values in (
        ("duration", telemetry.migration_durations),
        ("downtime", telemetry.migration_downtimes),
    ):
        if not values:
            continue
        yield gauge(
            f"balloond_migration_last_{kind}_seconds",
            f"Migration {kind} of the most recent successful migration.",
            value=values[-1],
        )
        yield gauge(
            f"balloond_migration_max_{kind}_seconds",
            f"Longest migration {kind} among the recent successful migrations (up to 100).",
            value=max(values),
        )
