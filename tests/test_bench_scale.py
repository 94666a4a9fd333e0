"""The scale script's measurement, on a small fleet (figures are printed, never asserted)."""

from __future__ import annotations

from balloond.bench.scale import measure, rss_kib, table


def test_measure_small_fleet() -> None:
    row = measure(50, 3)
    assert row["domains"] == 50 and row["ticks"] == 3
    assert row["actions"] > 0  # the generated fleet starts above demand: the law acts
    for key in ("tick_median_ms", "tick_p95_ms", "decide_median_ms", "decide_p95_ms"):
        assert row[key] > 0
    assert row["decide_median_ms"] <= row["tick_median_ms"]
    assert row["rss_mib"] > 0
    text = table([row])
    assert text.splitlines()[2].startswith("| 50 |")


def test_measure_splits_the_ticks_from_boot_from_the_settled_ones() -> None:
    row = measure(50, 3, boot=2)
    assert row["ticks"] == 3 and row["boot_ticks"] == 2
    assert row["boot_actions"] > 0 and row["boot_decide_median_ms"] > 0
    text = table([row])
    assert "from boot" in text.splitlines()[0]
    assert " ms, " in text.splitlines()[2]  # the boot column is filled


def test_rss_of_a_missing_field_is_zero() -> None:
    assert rss_kib("NoSuchField") == 0
    assert rss_kib() > 0
