"""What the guest needs: one sample of /proc, deltas between samples, demand and target.

demand = memory in use that is not reclaimable cache. Shared memory (tmpfs, shm) sits in
`Cached` but cannot be dropped, so it counts as used. With MemAvailable (3.14+) the kernel
already did this sum (free + reclaimable file pages + reclaimable slab, shmem excluded);
older kernels get the classic estimate from MemFree, Buffers, Cached, Shmem, SReclaimable.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

from balloond_guest import procfs
from balloond_guest.procfs import Counters, Psi
from balloond_guest.sizes import MIB


class Sample(NamedTuple):
    """One look at /proc at monotonic time `at`."""

    at: float
    meminfo: Counters
    psi: Psi | None
    vmstat: Counters


# Rates between two samples by report field name (ratios 0..1, bytes/s, faults/s).
Rates = Dict[str, Optional[float]]

# selfballoon learnt that a target of bare Committed_AS caused OOMs and added 10 % of RAM
# (anchors: Linux drivers/xen/xen-selfballoon.c); our buffer defaults follow that lesson.
DEFAULT_BUFFER = 64 * MIB
DEFAULT_BUFFER_RATIO = 0.10
DEFAULT_FLOOR = 128 * MIB


def take_sample(root: str, now: float) -> Sample:
    return Sample(now, procfs.read_meminfo(root), procfs.read_psi(root), procfs.read_vmstat(root))


def demand_of(meminfo: Counters) -> int | None:
    """Bytes in use that the kernel could not drop; None without MemTotal."""
    total = meminfo.get("MemTotal")
    if total is None:
        return None
    if "MemAvailable" in meminfo:
        return max(0, total - meminfo["MemAvailable"])
    shmem = meminfo.get("Shmem", 0)
    reclaimable = (
        meminfo.get("MemFree", 0)
        + meminfo.get("Buffers", 0)
        + max(0, meminfo.get("Cached", 0) - shmem)
        + meminfo.get("SReclaimable", 0)
    )
    return max(0, total - reclaimable)


def wanted_target(
    demand: int | None,
    buffer: int = DEFAULT_BUFFER,
    ratio: float = DEFAULT_BUFFER_RATIO,
    floor: int = DEFAULT_FLOOR,
) -> int | None:
    """demand + max(buffer, ratio * demand), never below `floor`."""
    if demand is None:
        return None
    return max(floor, demand + max(buffer, int(demand * ratio)))


def _rate(
    before: Counters, after: Counters, key: str, seconds: float, scale: int = 1
) -> float | None:
    if key not in before or key not in after or seconds <= 0:
        return None
    delta = after[key] - before[key]
    return max(0.0, delta * scale / seconds)  # a counter reset (reboot) reads as no activity


def rates(previous: Sample | None, current: Sample) -> Rates:
    """Pressure and paging rates between two samples: psi ratios over the interval (from the
    `total` stall microseconds), swap bytes/s, major faults/s. None where unknown."""
    result: Rates = {
        "psi_some": None,
        "psi_full": None,
        "swap_in_rate": None,
        "swap_out_rate": None,
        "major_fault_rate": None,
    }
    if previous is None:
        return result
    seconds = current.at - previous.at
    page = procfs.page_size()
    result["swap_in_rate"] = _rate(previous.vmstat, current.vmstat, "pswpin", seconds, page)
    result["swap_out_rate"] = _rate(previous.vmstat, current.vmstat, "pswpout", seconds, page)
    result["major_fault_rate"] = _rate(previous.vmstat, current.vmstat, "pgmajfault", seconds)
    if previous.psi is not None and current.psi is not None and seconds > 0:
        result["psi_some"] = _stall_ratio(previous.psi.some_total, current.psi.some_total, seconds)
        result["psi_full"] = _stall_ratio(previous.psi.full_total, current.psi.full_total, seconds)
    return result


def _stall_ratio(before: int | None, after: int | None, seconds: float) -> float | None:
    if before is None or after is None:
        return None
    return min(1.0, max(0.0, (after - before) / (seconds * 1e6)))
