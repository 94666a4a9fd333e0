"""The collector: what a scrape of a daemon view contains, value by value."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Mapping

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from balloond.metrics import BalloondCollector, make_registry, render
from balloond.metrics.demo import simulated_view
from balloond.metrics.static import StaticView
from balloond.model import (
    DomainSnapshot,
    GuestReport,
    HostSnapshot,
    Snapshot,
)
from balloond.telemetry import TICK_BUCKETS
from balloond.units import GiB, MiB
from balloond.view import ClockedView
from tests.support.daemon import make_daemon, sim_host
from tests.support.views import NOW, hand_made_view, scrape

# Every family the issue asks for; a scrape of a busy view must contain each one.
EXPECTED = {
    "balloond_domain_current_bytes",
    "balloond_domain_target_bytes",
    "balloond_domain_floor_bytes",
    "balloond_domain_ceiling_bytes",
    "balloond_domain_maxmem_bytes",
    "balloond_domain_demand_bytes",
    "balloond_domain_fair_share_bytes",
    "balloond_domain_available_bytes",
    "balloond_domain_pressure_some_ratio",
    "balloond_domain_pressure_full_ratio",
    "balloond_domain_swap_in_bytes_total",
    "balloond_domain_swap_out_bytes_total",
    "balloond_domain_major_faults_total",
    "balloond_domain_report_age_seconds",
    "balloond_domain_info",
    "balloond_domain_state",
    "balloond_domain_held",
    "balloond_domain_stuck",
    "balloond_domain_decision_reason",
    "balloond_adjustments_total",
    "balloond_adjusted_bytes_total",
    "balloond_adjustment_failures_total",
    "balloond_host_total_bytes",
    "balloond_host_free_bytes",
    "balloond_host_reserve_bytes",
    "balloond_host_targets_bytes",
    "balloond_host_reclaimed_bytes",
    "balloond_host_overcommit_ratio",
    "balloond_tick_duration_seconds_bucket",
    "balloond_tick_duration_seconds_count",
    "balloond_tick_duration_seconds_sum",
    "balloond_last_tick_timestamp_seconds",
    "balloond_libvirt_up",
    "balloond_libvirt_reconnects_total",
    "balloond_policy_reloads_total",
    "balloond_policy_errors_total",
    "balloond_reports_accepted_total",
    "balloond_reports_rejected_total",
    "balloond_operations_total",
    "balloond_migration_last_duration_seconds",
    "balloond_migration_last_downtime_seconds",
}


def samples(body: bytes) -> list[Sample]:
    return [s for fam in text_string_to_metric_families(body.decode()) for s in fam.samples]


def value(body: bytes, name: str, **labels: str) -> float:
    found = [s.value for s in samples(body) if s.name == name and _has(s.labels, labels)]
    assert len(found) == 1, f"{name}{labels}: expected one sample, found {found}"
    return found[0]


def _has(actual: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(actual.get(k) == v for k, v in wanted.items())


def names(body: bytes) -> set[str]:
    return {s.name for s in samples(body)}


def test_hand_made_view_exports_every_family() -> None:
    missing = EXPECTED - names(scrape(hand_made_view()))
    assert not missing


def test_simulated_host_scrape_exports_domains_with_libvirt_names() -> None:
    view, host = simulated_view(ticks=2)
    body = render(view, clock=host.now)
    assert view.snapshot is not None
    domains = {d.name for d in view.snapshot.domains}
    exported = {s.labels["domain"] for s in samples(body) if s.name == "balloond_domain_info"}
    assert exported == domains
    assert value(body, "balloond_domains") == len(domains)


def test_per_domain_values() -> None:
    body = scrape(hand_made_view())
    assert value(body, "balloond_domain_current_bytes", domain="web1") == 2 * GiB
    assert value(body, "balloond_domain_target_bytes", domain="web1") == 1536 * MiB
    assert value(body, "balloond_domain_floor_bytes", domain="db1") == GiB
    assert value(body, "balloond_domain_ceiling_bytes", domain="db1") == 4 * GiB
    assert value(body, "balloond_domain_maxmem_bytes", domain="db1") == 4 * GiB
    # The decision's demand wins over the guest's own claim.
    assert value(body, "balloond_domain_demand_bytes", domain="db1") == 2 * GiB
    assert value(body, "balloond_domain_fair_share_bytes", domain="db1") == 3 * GiB
    assert value(body, "balloond_domain_available_bytes", domain="web1") == GiB
    assert value(body, "balloond_domain_pressure_some_ratio", domain="db1") == 0.25
    assert value(body, "balloond_domain_pressure_full_ratio", domain="db1") == 0.05
    assert value(body, "balloond_domain_swap_in_bytes_total", domain="web1") == 4096
    assert value(body, "balloond_domain_swap_out_bytes_total", domain="web1") == 8192
    assert value(body, "balloond_domain_major_faults_total", domain="web1") == 7
    assert value(body, "balloond_domain_report_age_seconds", domain="db1") == 100
    assert value(body, "balloond_domain_info", domain="db1", uuid="u-db1", policy="db") == 1
    assert value(body, "balloond_domain_state", domain="db1", state="paused") == 1
    assert value(body, "balloond_domain_decision_reason", domain="db1", reason="grow_pressure") == 1
    assert value(body, "balloond_domain_held", domain="web1") == 1
    assert value(body, "balloond_domain_held", domain="db1") == 0
    assert value(body, "balloond_domain_stuck", domain="db1") == 1
    assert value(body, "balloond_domain_stuck", domain="web1") == 0
    assert not [s for s in samples(body) if s.labels.get("domain") == "gone"]


def test_missing_guest_data_gives_no_sample_rather_than_a_fake_zero() -> None:
    body = scrape(hand_made_view())
    sampled = {
        s.labels.get("domain")
        for s in samples(body)
        if s.name == "balloond_domain_pressure_some_ratio"
    }
    assert sampled == {"db1"}  # web1 has no report
    swap = {
        s.labels.get("domain")
        for s in samples(body)
        if s.name == "balloond_domain_swap_in_bytes_total"
    }
    assert swap == {"web1"}  # db1 has no balloon statistics


def test_host_values() -> None:
    body = scrape(hand_made_view())
    assert value(body, "balloond_host_total_bytes") == 16 * GiB
    assert value(body, "balloond_host_free_bytes") == 6 * GiB
    assert value(body, "balloond_host_reserve_bytes") == GiB
    assert value(body, "balloond_host_targets_bytes") == 1536 * MiB + 4 * GiB
    assert value(body, "balloond_host_reclaimed_bytes") == (4 - 2 + 4 - 3) * GiB
    assert value(body, "balloond_host_overcommit_ratio") == 0.5
    assert value(body, "balloond_host_budget_bytes") == 2 * GiB


def test_decision_and_daemon_counters() -> None:
    body = scrape(hand_made_view())
    assert value(body, "balloond_adjustments_total", direction="shrink", reason="shrink_idle") == 1
    assert value(body, "balloond_adjustments_total", direction="grow", reason="grow_pressure") == 1
    assert value(body, "balloond_adjusted_bytes_total", direction="shrink") == 512 * MiB
    assert value(body, "balloond_adjusted_bytes_total", direction="grow") == GiB
    assert value(body, "balloond_adjustment_failures_total", reason="domain_not_found") == 1
    assert value(body, "balloond_reports_accepted_total", domain="db1") == 1
    assert value(body, "balloond_reports_rejected_total", reason="malformed") == 1
    assert value(body, "balloond_libvirt_up") == 1
    assert value(body, "balloond_libvirt_reconnects_total") == 1
    assert value(body, "balloond_policy_reloads_total") == 2
    assert value(body, "balloond_policy_errors_total") == 1
    assert value(body, "balloond_policy_last_load_failed") == 1
    assert value(body, "balloond_operations_total", operation="migrate", result="ok") == 2
    assert value(body, "balloond_operations_total", operation="save", result="failed") == 1
    assert value(body, "balloond_migration_last_duration_seconds") == 4.0
    assert value(body, "balloond_migration_max_duration_seconds") == 12.5
    assert value(body, "balloond_migration_last_downtime_seconds") == 0.5
    assert value(body, "balloond_last_tick_timestamp_seconds") == NOW - 10
    assert value(body, "balloond_tick_failures_total") == 1
    assert value(body, "balloond_start_time_seconds") == NOW - 3600


def test_tick_histogram_is_cumulative_and_ends_at_the_count() -> None:
    body = scrape(hand_made_view())
    buckets = [
        (s.labels["le"], s.value)
        for s in samples(body)
        if s.name == "balloond_tick_duration_seconds_bucket"
    ]
    assert [float(le) for le, _ in buckets] == [*TICK_BUCKETS, math.inf]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert dict(buckets)["0.001"] == 1  # 0.5 ms
    assert dict(buckets)["0.005"] == 4  # + 3 ms, 3 ms, 2 ms (the failed tick counts too)
    assert dict(buckets)["+Inf"] == 6  # 30 s lands past the last bound
    assert value(body, "balloond_tick_duration_seconds_count") == 6
    assert value(body, "balloond_tick_duration_seconds_sum") == pytest.approx(30.2085)


def test_no_created_series_and_nothing_but_balloond() -> None:
    body = scrape(hand_made_view())
    assert not [n for n in names(body) if n.endswith("_created")]
    assert all(n.startswith("balloond_") for n in names(body))


def test_importing_registers_nothing_globally() -> None:
    collected = {s.name for m in REGISTRY.collect() for s in m.samples}
    assert not [n for n in collected if n.startswith("balloond_")]


def test_daemon_without_a_tick_yet_still_scrapes() -> None:
    view = StaticView(uri="test:///default", reserve=GiB)
    body = scrape(view)
    assert value(body, "balloond_host_reserve_bytes") == GiB
    assert value(body, "balloond_libvirt_up") == 0
    # 0 before the first tick: BalloondTicksStale sees a first tick that never ends.
    assert value(body, "balloond_last_tick_timestamp_seconds") == 0
    assert not [n for n in names(body) if n.startswith("balloond_domain_")]


def test_snapshot_without_decision_has_no_targets_but_current_sizes() -> None:
    body = scrape(hand_made_view(decision=None))
    assert value(body, "balloond_domain_current_bytes", domain="web1") == 2 * GiB
    assert "balloond_domain_target_bytes" not in names(body)
    # With no decision, the sum of targets falls back to the current sizes.
    assert value(body, "balloond_host_targets_bytes") == 5 * GiB
    assert value(body, "balloond_domain_info", domain="web1", policy="") == 1


def test_empty_host_and_zero_total_do_not_divide_by_zero() -> None:
    snapshot = Snapshot(NOW, HostSnapshot(total=0, free=0), ())
    body = scrape(hand_made_view(snapshot=snapshot, decision=None))
    assert value(body, "balloond_host_overcommit_ratio") == 0
    assert value(body, "balloond_host_reclaimed_bytes") == 0


def test_report_in_the_future_gives_age_zero_not_negative() -> None:
    view = hand_made_view(last_reports={"u-db1": GuestReport(seq=2, received_at=NOW + 50)})
    assert value(scrape(view), "balloond_domain_report_age_seconds", domain="db1") == 0


@pytest.mark.parametrize(
    "hostile",
    ['we"b', "back\\slash", "new\nline", "ünï cödé", "x" * 300, "{}=,", 'a"} 1\nevil_metric 2'],
)
def test_hostile_domain_names_are_escaped(hostile: str) -> None:
    dom = DomainSnapshot(hostile, "u-h", current=GiB, maxmem=2 * GiB)
    snapshot = Snapshot(NOW, HostSnapshot(total=8 * GiB, free=4 * GiB), (dom,))
    body = scrape(hand_made_view(snapshot=snapshot, decision=None))
    assert "evil_metric" not in names(body)
    assert value(body, "balloond_domain_current_bytes", domain=hostile) == GiB


def test_collector_reads_the_view_at_scrape_time() -> None:
    view = hand_made_view()
    registry = make_registry(view, clock=lambda: NOW)
    first = generate_latest(registry)
    assert view.snapshot is not None
    grown = Snapshot(
        NOW,
        view.snapshot.host,
        (DomainSnapshot("web1", "u-web1", current=3 * GiB, maxmem=4 * GiB),),
    )
    object.__setattr__(view, "snapshot", grown)
    second = generate_latest(registry)
    assert value(first, "balloond_domain_current_bytes", domain="web1") == 2 * GiB
    assert value(second, "balloond_domain_current_bytes", domain="web1") == 3 * GiB
    current = {
        s.labels["domain"] for s in samples(second) if s.name == "balloond_domain_current_bytes"
    }
    assert current == {"web1"}


def test_collector_describes_nothing_so_registration_does_not_collect() -> None:
    class Exploding(StaticView):
        def last_snapshot(self) -> Snapshot | None:
            raise AssertionError("collected at registration")

    collector = BalloondCollector(Exploding(uri="x", reserve=0))
    assert collector.describe() == []
    make_registry(Exploding(uri="x", reserve=0))


@pytest.mark.prometheus
def test_promtool_check_metrics_is_clean() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    view, host = simulated_view(ticks=2)
    for body in (scrape(hand_made_view()), render(view, clock=host.now)):
        result = subprocess.run(
            [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
        assert result.stdout.strip() == b"" and result.stderr.strip() == b""


# -- the fast renderer agrees with prometheus_client ------------------------------------------


def sample_set(families: object) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for fam in families  # type: ignore[attr-defined]
        for s in fam.samples
    }


def test_fast_text_rendering_matches_prometheus_client() -> None:
    view = hand_made_view()
    fast = scrape(view).decode()
    reference = generate_latest(make_registry(view, clock=lambda: NOW)).decode()
    assert sample_set(text_string_to_metric_families(fast)) == sample_set(
        text_string_to_metric_families(reference)
    )
    help_and_type = [line for line in fast.splitlines() if line.startswith("#")]
    assert help_and_type == [line for line in reference.splitlines() if line.startswith("#")]


def test_fast_openmetrics_rendering_parses_and_matches() -> None:
    from prometheus_client.openmetrics.exposition import generate_latest as om_latest
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as om_parse,
    )

    from balloond.metrics.collector import families
    from balloond.metrics.families import render_text

    view = hand_made_view()
    fast = render_text(families(view, lambda: NOW), openmetrics=True).decode()
    assert fast.endswith("# EOF\n")
    reference = om_latest(make_registry(view, clock=lambda: NOW)).decode()
    assert sample_set(om_parse(fast)) == sample_set(om_parse(reference))


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1, "1"),
        (0, "0"),
        (2.5, "2.5"),
        (1e-05, "1e-05"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (2**62, "4611686018427387904"),
    ],
)
def test_value_format(number: float, text: str) -> None:
    from balloond.metrics.families import format_value

    assert format_value(number) == text


def test_nan_and_infinite_values_survive_the_text_format() -> None:
    report = GuestReport(seq=1, received_at=NOW, psi_some=math.nan, psi_full=math.inf)
    body = scrape(hand_made_view(last_reports={"u-db1": report}))
    assert math.isnan(value(body, "balloond_domain_pressure_some_ratio", domain="db1"))
    assert value(body, "balloond_domain_pressure_full_ratio", domain="db1") == math.inf


def test_the_daemon_is_a_view_on_its_own_clock_and_a_static_view_is_not() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: host, clock=host.now)
    assert isinstance(daemon, ClockedView) and daemon.clock() == host.now()
    assert not isinstance(hand_made_view(), ClockedView)


def test_ages_use_the_views_own_clock_when_none_is_given() -> None:
    class Clocked(StaticView):
        def clock(self) -> float:
            return NOW + 5

    base = hand_made_view()
    view = Clocked(**{f: getattr(base, f) for f in base.__dataclass_fields__})
    assert value(render(view), "balloond_domain_report_age_seconds", domain="db1") == 105
    assert (
        value(render(view, clock=lambda: NOW), "balloond_domain_report_age_seconds", domain="db1")
        == 100
    )
