"""libvirt statistics dictionaries -> balloond values, without a hypervisor."""

from __future__ import annotations

import pytest

from balloond.backend.libvirt_stats import (
    completed_figures,
    job_kind,
    job_kind_from_info,
    job_progress,
    memory_stats,
)
from balloond.core import ControllerState, decide
from balloond.model import DomainSnapshot, HostSnapshot, JobKind, MemoryStats, Reason, Snapshot
from balloond.policy.model import Policy
from balloond.units import GiB, KiB, MiB

NOW = 1_800_000_000.0

# What QEMU returned for a 512 MiB guest in the real-VM lab (values in KiB).
QEMU = {
    "actual": 524288,
    "swap_in": 12,
    "swap_out": 40,
    "major_fault": 321,
    "minor_fault": 9000,
    "unused": 300000,
    "available": 468000,
    "usable": 380000,
    "last_update": 1764200000,
    "disk_caches": 60000,
    "rss": 200000,
}


def test_kib_become_bytes_and_names_are_untangled() -> None:
    stats = memory_stats(QEMU)
    assert stats == MemoryStats(
        total=468000 * KiB,  # libvirt "available" is the guest's MemTotal
        available=380000 * KiB,  # and "usable" its MemAvailable
        unused=300000 * KiB,
        disk_caches=60000 * KiB,
        swap_in=12 * KiB,
        swap_out=40 * KiB,
        major_faults=321,  # a count, not a size
        last_update=1764200000.0,
        rss=200000 * KiB,  # host side: QEMU's resident set
    )


def test_no_guest_driver_means_no_guest_stats_but_rss_is_kept() -> None:
    # Without a balloon driver QEMU still reports its resident set: the core needs it to
    # see how much of the balloon the host backs; the guest's own fields stay None.
    assert memory_stats({"actual": 524288, "rss": 1000}) == MemoryStats(rss=1000 * KiB)
    assert memory_stats({"actual": 524288}) is None
    assert memory_stats({}) is None


def test_garbage_rss_is_dropped() -> None:
    for bad in (-1, "200000", 1.5, True, None):
        stats = memory_stats({**QEMU, "rss": bad})
        assert stats is not None and stats.rss is None, bad


def test_stats_period_off_gives_no_last_update() -> None:
    stats = memory_stats({**QEMU, "last_update": 0})
    assert stats is not None and stats.last_update is None


def test_garbage_values_are_dropped() -> None:
    stats = memory_stats({"usable": -5, "available": "lots", "unused": True, "disk_caches": 7})
    assert stats == MemoryStats(disk_caches=7 * KiB)


def test_job_kinds() -> None:
    assert job_kind({"type": 0}) is None
    assert job_kind({"type": 3, "operation": 5}) is None  # completed: no job now
    assert job_kind({"type": 2, "operation": 5}) == JobKind.MIGRATION
    assert job_kind({"type": 1, "operation": 2}) == JobKind.SAVE
    assert job_kind({"type": 2, "operation": 3}) == JobKind.RESTORE
    assert job_kind({"type": 2}) == JobKind.OTHER  # older libvirt: no operation field
    assert job_kind({"type": 2, "operation": 99}) == JobKind.OTHER


def test_progress_from_job_stats() -> None:
    progress = job_progress(
        {
            "type": 2,
            "memory_processed": 300,
            "memory_remaining": 700,
            "memory_total": 1000,
            "memory_dirty_rate": 10,
            "memory_page_size": 4096,
            "time_elapsed": 2500,
        }
    )
    assert progress is not None
    assert (progress.processed, progress.remaining, progress.total) == (300, 700, 1000)
    assert progress.dirty_rate == 40960  # pages/s to bytes/s
    assert progress.elapsed == 2.5
    assert job_progress({"type": 0}) is None


def test_completed_figures() -> None:
    assert completed_figures({"data_processed": 5000, "downtime": 45, "time_elapsed": 2900}) == (
        5000,
        0.045,
        2.9,
    )
    assert completed_figures({}) == (None, None, None)


def test_job_kinds_from_the_older_job_info() -> None:
    assert job_kind_from_info([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) is None  # NONE
    assert job_kind_from_info([2, 1500, 0, 10, 5, 5]) == JobKind.OTHER  # UNBOUNDED
    assert job_kind_from_info([1, 1500]) == JobKind.OTHER  # BOUNDED
    assert job_kind_from_info([3, 1500]) is None  # completed
    assert job_kind_from_info([]) is None


# The shape of virDomainGetJobStats on the source during a `virsh migrate --live` that
# balloond did not start (field names as libvirt 9.0 gives them; values illustrative).
HAND_MIGRATION = {
    "type": 2,
    "operation": 5,
    "time_elapsed": 1830,
    "data_total": 545259520,
    "data_processed": 91226112,
    "data_remaining": 454033408,
    "memory_total": 545259520,
    "memory_processed": 91226112,
    "memory_remaining": 454033408,
    "memory_dirty_rate": 0,
    "memory_page_size": 4096,
}


@pytest.mark.parametrize(
    ("stats", "kind"),
    [
        (HAND_MIGRATION, JobKind.MIGRATION),
        ({**HAND_MIGRATION, "operation": 4}, JobKind.MIGRATION),
        ({"type": 2, "operation": 2}, JobKind.SAVE),
        ({"type": 2, "operation": 8}, JobKind.DUMP),
        ({"type": 0}, None),
    ],
)
def test_a_job_nobody_told_the_daemon_about_makes_the_domain_busy(
    stats: dict[str, object], kind: JobKind | None
) -> None:
    """jobStats values -> DomainSnapshot.job -> the decision core leaves the domain alone,
    even far below its floor (growing it mid-migration would fight the copy)."""
    job = job_kind(stats)
    assert job == kind
    dom = DomainSnapshot(
        name="m1",
        uuid="u-m1",
        current=256 * MiB,
        maxmem=4 * GiB,
        job=job,
        stats=MemoryStats(total=256 * MiB, available=8 * MiB, last_update=NOW - 1),
    )
    snap = Snapshot(taken_at=NOW, host=HostSnapshot(total=64 * GiB, free=32 * GiB), domains=(dom,))
    decision, _ = decide(
        snap, lambda _d: Policy(name="p"), ControllerState.empty(), reserve=GiB, holds={}, now=NOW
    )
    (decided,) = decision.domains
    if kind is None:
        assert decided.reason != Reason.BUSY and decided.act
    else:
        assert (decided.reason, decided.act, decided.target) == (Reason.BUSY, False, 256 * MiB)
        assert kind.value in decided.explanation


def test_xen_stats_are_the_hypervisors_not_the_guests() -> None:
    # libxl's `available` is the domain's maxmem (the Xen lab: 512 MiB for a guest ballooned
    # to 320 MiB), not the guest's MemTotal as QEMU's is: read as MemTotal it would claim
    # 192 MiB the guest does not have. Nothing there comes from the guest.
    libxl = {"actual": 327680, "available": 524288}
    assert memory_stats(libxl, "xen") is None
    assert memory_stats(libxl) == MemoryStats(total=512 * 1024 * KiB)  # what QEMU's means
