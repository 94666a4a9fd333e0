"""libvirt's statistics dictionaries, converted to balloond's values (bytes, seconds).

Pure functions over plain dicts (tested without a hypervisor). Balloon statistics come from
the guest and are untrusted: anything that is not a non-negative integer is dropped here, and
the decision core's sanitiser judges plausibility (zero, larger than maxmem, stale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from balloond.backend.base import JobProgress
from balloond.model import JobKind, MemoryStats
from balloond.units import PAGE, KiB

# libvirt's VIR_DOMAIN_JOB_OPERATION_* values (stable ABI numbers).
_OPERATIONS: dict[int, JobKind] = {
    1: JobKind.OTHER,  # start
    2: JobKind.SAVE,
    3: JobKind.RESTORE,
    4: JobKind.MIGRATION,  # incoming
    5: JobKind.MIGRATION,  # outgoing
    6: JobKind.SNAPSHOT,
    7: JobKind.SNAPSHOT,  # revert
    8: JobKind.DUMP,
    9: JobKind.OTHER,  # backup
    10: JobKind.SNAPSHOT,  # delete
}
_JOB_NONE = 0  # VIR_DOMAIN_JOB_NONE
_JOB_ACTIVE = (1, 2)  # VIR_DOMAIN_JOB_BOUNDED, VIR_DOMAIN_JOB_UNBOUNDED


def _count(untrusted: Mapping[str, object], key: str) -> int | None:
    value = untrusted.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _kib(untrusted: Mapping[str, object], key: str) -> int | None:
    value = _count(untrusted, key)
    return None if value is None else value * KiB


def memory_stats(untrusted: Mapping[str, object], hypervisor: str = "qemu") -> MemoryStats | None:
    """virDomainMemoryStats (KiB) -> MemoryStats (bytes). None when nothing was reported,
    not even QEMU's host-side `rss`. With `rss` only (no balloon driver in the guest) the
    guest's fields are None: the core reads no demand from it, only how much of the balloon
    the host backs.

    Xen: libvirt's libxl driver answers `actual` (the balloon) and `available`, which there
    is the domain's maxmem, not the guest's MemTotal as with QEMU (seen in the Xen lab: 512
    MiB for a guest ballooned to 320). Nothing in it comes from the guest: None. Xen guests
    speak through the agent's xenstore reports."""
    if hypervisor == "xen":
        return None
    stats = MemoryStats(
        total=_kib(untrusted, "available"),  # libvirt's "available" is the guest's MemTotal
        available=_kib(untrusted, "usable"),  # and "usable" its MemAvailable
        unused=_kib(untrusted, "unused"),
        disk_caches=_kib(untrusted, "disk_caches"),
        swap_in=_kib(untrusted, "swap_in"),
        swap_out=_kib(untrusted, "swap_out"),
        major_faults=_count(untrusted, "major_fault"),
        last_update=_last_update(untrusted),
        rss=_kib(untrusted, "rss"),  # QEMU's resident set: what of the balloon the host backs
    )
    if stats == MemoryStats():
        return None
    return stats


def _last_update(untrusted: Mapping[str, object]) -> float | None:
    value = _count(untrusted, "last_update")
    return None if not value else float(value)  # 0: the guest never updated


def job_kind(stats: Mapping[str, object]) -> JobKind | None:
    """The running job from virDomainGetJobStats, or None when there is none."""
    job_type = stats.get("type", _JOB_NONE)
    if job_type not in _JOB_ACTIVE:
        return None
    operation = stats.get("operation")
    if isinstance(operation, int) and not isinstance(operation, bool):
        return _OPERATIONS.get(operation, JobKind.OTHER)
    return JobKind.OTHER


def job_kind_from_info(info: Sequence[object]) -> JobKind | None:
    """The running job from the older virDomainGetJobInfo list ([type, elapsed ms, ...]),
    for drivers without jobStats. It names no operation: any active job is OTHER."""
    if not info or info[0] not in _JOB_ACTIVE:
        return None
    return JobKind.OTHER


def job_progress(stats: Mapping[str, object]) -> JobProgress | None:
    """Migration progress from virDomainGetJobStats; None when no job runs."""
    if stats.get("type", _JOB_NONE) not in _JOB_ACTIVE:
        return None
    page = _count(stats, "memory_page_size") or PAGE
    processed = _count(stats, "memory_processed") or _count(stats, "data_processed") or 0
    remaining = _count(stats, "memory_remaining")
    if remaining is None:
        remaining = _count(stats, "data_remaining") or 0
    total = _count(stats, "memory_total") or _count(stats, "data_total") or 0
    return JobProgress(
        processed=processed,
        remaining=remaining,
        total=total,
        dirty_rate=(_count(stats, "memory_dirty_rate") or 0) * page,  # pages/s -> bytes/s
        elapsed=(_count(stats, "time_elapsed") or 0) / 1000.0,
    )


def completed_figures(stats: Mapping[str, object]) -> tuple[int | None, float | None, float | None]:
    """(bytes transferred, downtime s, elapsed s) of a completed migration's job stats."""
    transferred = _count(stats, "data_processed")
    if transferred is None:
        transferred = _count(stats, "memory_processed")
    downtime = _count(stats, "downtime")
    elapsed = _count(stats, "time_elapsed")
    return (
        transferred,
        None if downtime is None else downtime / 1000.0,
        None if elapsed is None else elapsed / 1000.0,
    )
