"""The guest model: how one guest's memory, swap and stall respond to its balloon.

A guest needs `memmap + KERNEL_USED + anon + file` bytes of balloon to run without stalling
(its *need*). Below that it first drops page cache (refaults: a small stall), then swaps
anonymous memory (thrashing: a large stall); when anonymous memory exceeds what fits plus
swap, the OOM killer runs. The full model, with its constants, is in docs/simulator.md.
Everything is deterministic: same scenario, same targets, same figures.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass

from balloond.model import DomainState, GuestReport, JobKind, MemoryStats
from balloond.sim.scenario import GuestSpec
from balloond.units import PAGE, MiB

KERNEL_USED = 64 * MiB  # kernel text, slab, daemons: inside MemTotal, never reclaimable
BALLOON_RATE = 256 * MiB  # bytes/s the balloon moves (inflate and deflate)
SLOW_FACTOR = 8  # a `slow` guest's balloon moves this many times slower
THRASH_RATE = 0.05  # share of swapped-out memory touched (swapped in and out again) per second
DRAIN_RATE = 32 * MiB  # bytes/s swapped back in once memory is available again
REFAULT_RATE = 0.02  # share of dropped working-set cache read back per second
ANON_STALL = 3.0  # stall ratio per unit of anon shortfall (10% of anon swapped: 30% stall)
FILE_STALL = 0.3  # stall ratio per unit of file shortfall
OOM_REPEAT = 10.0  # seconds: while memory stays short the killer runs again this often
AVG10_ALPHA = 0.1  # per-second weight of PSI's avg10-like average


def memmap_size(maxmem: int) -> int:
    """struct page for every page up to maxmem (64 bytes per 4 KiB page): outside MemTotal."""
    return maxmem // 64


def domain_uuid(scenario: str, name: str) -> str:
    """Stable across runs: the same scenario and guest name always give the same UUID."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"balloond-sim:{scenario}/{name}"))


@dataclass(frozen=True, slots=True)
class GuestTruth:
    """What the guest really experienced in the last step (the benchmark's ground truth)."""

    need: int  # balloon size to run without stall now
    anon: int
    file: int
    swapped: int  # anon bytes currently in swap
    stall_some: float  # 0..1 over the last step
    stall_full: float
    oom: bool


class SimGuest:
    """One simulated guest. Mutable; only its host calls `step` and `set_target`."""

    def __init__(self, spec: GuestSpec, scenario: str, *, domain_id: int) -> None:
        self.spec = spec
        self.uuid = domain_uuid(scenario, spec.name)
        self.id = domain_id
        self.memmap = memmap_size(spec.maxmem)
        self.maxmem = spec.maxmem
        self.current = spec.initial if spec.initial is not None else spec.maxmem
        self.target = self.current
        self.state = DomainState.RUNNING
        self.job: JobKind | None = None
        self.swap_used = 0
        self.cold_cache = 0
        self.file_resident = 0
        self.swap_in = 0
        self.swap_out = 0
        self.major_faults = 0
        self.oom_events = 0
        self.seq = 0
        self.avg10 = 0.0
        self.last_update = 0.0
        self._oom_since: float | None = None
        self._rates = (0.0, 0.0, 0.0)  # swap in, swap out (bytes/s), major faults/s
        self._stats_cache: tuple[int, int, MemoryStats] | None = None  # (seq, current, stats)
        self.tags = frozenset(spec.tags)
        self.truth = GuestTruth(
            need=self.need_at(0.0),
            anon=0,
            file=0,
            swapped=0,
            stall_some=0.0,
            stall_full=0.0,
            oom=False,
        )

    # -- demand ---------------------------------------------------------------------------

    def need_at(self, t: float) -> int:
        """Balloon size that runs the guest without stall at scenario time `t`."""
        return self.memmap + KERNEL_USED + self.spec.anon.at(t) + self.spec.file.at(t)

    def peak_need(self, t0: float, t1: float) -> int:
        spec = self.spec
        return self.memmap + KERNEL_USED + spec.anon.peak(t0, t1) + spec.file.peak(t0, t1)

    # -- control ----------------------------------------------------------------------------

    def set_target(self, target: int) -> None:
        self.target = max(0, min(target, self.maxmem))

    def set_maxmem(self, size: int) -> None:
        self.maxmem = size
        self.target = min(self.target, size)
        self.current = min(self.current, size)

    # -- one step ---------------------------------------------------------------------------

    def step(self, t: float, dt: float, now: float, *, room: int | None = None) -> None:
        """Advance from t to t + dt; `now` is the host's epoch clock at the end of the step;
        `room` is how much the balloon may grow (the host's free memory; None: unlimited)."""
        anon = self.spec.anon.at(t + dt)
        file = self.spec.file.at(t + dt)
        if self.state == DomainState.RUNNING:
            self._move_balloon(anon, dt, room)
        usable = max(0, self.current - self.memmap - KERNEL_USED)
        resident = min(anon, usable)
        short = anon - resident
        oom = short > self.spec.swap
        if oom:
            short = self.spec.swap  # the killer freed the rest
        self._count_oom(oom, t + dt)
        self.swap_used = min(self.swap_used, anon)  # memory freed in swap frees its slots
        swap_in, swap_out = self._swap(short, dt)
        spare = usable - resident
        self.file_resident = min(file, spare)
        file_short = file - self.file_resident
        refault = file_short * REFAULT_RATE * dt
        self.cold_cache = max(
            0, min(self.cold_cache + int(self.spec.cache_fill * dt), spare - self.file_resident)
        )
        faults = int((swap_in + refault) / PAGE)
        self.swap_in += swap_in
        self.swap_out += swap_out
        self.major_faults += faults
        self._rates = (swap_in / dt, swap_out / dt, faults / dt)
        stall = (
            1.0
            if oom
            else min(
                1.0, ANON_STALL * short / max(anon, 1) + FILE_STALL * file_short / max(file, 1)
            )
        )
        self.avg10 += (stall - self.avg10) * min(1.0, AVG10_ALPHA * dt)
        self.truth = GuestTruth(
            need=self.memmap + KERNEL_USED + anon + file,
            anon=anon,
            file=file,
            swapped=self.swap_used,
            stall_some=stall,
            stall_full=stall * 0.5,
            oom=oom,
        )
        self.seq += 1
        self.last_update = now

    def _move_balloon(self, anon: int, dt: float, room: int | None) -> None:
        if self.spec.behaviour == "stuck":
            return
        rate = BALLOON_RATE / (SLOW_FACTOR if self.spec.behaviour == "slow" else 1)
        limit = int(rate * dt)
        if self.target >= self.current:
            grow = limit if room is None else min(limit, room)
            self.current = min(self.target, self.current + grow, self.maxmem)
            return
        # virtio-balloon inflates with __GFP_NORETRY: it reclaims and swaps, but stops
        # rather than OOM-kill, so the balloon never takes more than anon can yield to swap.
        lowest = self.memmap + KERNEL_USED + max(0, anon - self.spec.swap)
        goal = max(self.target, min(self.current, lowest))
        self.current = max(goal, self.current - limit)

    def _swap(self, short: int, dt: float) -> tuple[int, int]:
        swap_in = swap_out = 0
        if short > self.swap_used:
            swap_out = short - self.swap_used
            self.swap_used = short
        elif short < self.swap_used:
            back = min(self.swap_used - short, int(DRAIN_RATE * dt))
            swap_in = back
            self.swap_used -= back
        touched = int(short * THRASH_RATE * dt)  # thrashing: touched pages go in and out
        return swap_in + touched, swap_out + touched

    def _count_oom(self, oom: bool, t: float) -> None:
        if not oom:
            self._oom_since = None
        elif self._oom_since is None or t - self._oom_since >= OOM_REPEAT:
            self.oom_events += 1
            self._oom_since = t

    # -- what the host can observe ----------------------------------------------------------

    def mem_total(self) -> int:
        return max(0, self.current - self.memmap)

    def stats(self) -> MemoryStats:
        """What virtio-balloon would report (cumulative counters). Built once per step."""
        cached = self._stats_cache
        if cached is not None and cached[0] == self.seq and cached[1] == self.current:
            return cached[2]
        stats = self._build_stats()
        self._stats_cache = (self.seq, self.current, stats)
        return stats

    def _build_stats(self) -> MemoryStats:
        truth = self.truth
        used = KERNEL_USED + max(0, truth.anon - truth.swapped)
        cache = self.file_resident + self.cold_cache
        total = self.mem_total()
        unused = max(0, total - used - cache)
        return MemoryStats(
            total=total,
            available=unused + cache,
            unused=unused,
            disk_caches=cache,
            swap_in=self.swap_in,
            swap_out=self.swap_out,
            major_faults=self.major_faults,
            last_update=self.last_update,
            rss=self.current,
        )  # Xen-style: the whole balloon is backed

    def report(self) -> GuestReport | None:
        """The guest agent's report, as the agent would send it (None: no agent)."""
        if not self.spec.agent or self.seq == 0:
            return None
        truth = self.truth
        stats = self.stats()
        factor = self.spec.lies_factor if self.spec.behaviour == "lies" else 1.0
        # As the real agent computes it (guest-agent demand.py): MemTotal - MemAvailable,
        # so reclaimable cache, hot or not, is not part of it; only PSI shows a hot cache.
        assert stats.total is not None and stats.available is not None
        demand = int((stats.total - stats.available) * factor)
        committed = int((truth.anon * 1.1 + KERNEL_USED) * factor)
        swap_in_rate, swap_out_rate, fault_rate = self._rates
        return GuestReport(
            seq=self.seq,
            received_at=self.last_update,
            agent_version="sim",
            mem_total=stats.total,
            mem_available=stats.available,
            committed_as=committed,
            cached=stats.disk_caches,
            shmem=0,
            swap_total=self.spec.swap,
            swap_free=self.spec.swap - self.swap_used,
            demand=demand,
            psi_some=truth.stall_some,
            psi_full=truth.stall_full,
            psi_some_avg10=self.avg10,
            swap_in_rate=swap_in_rate,
            swap_out_rate=swap_out_rate,
            major_fault_rate=fault_rate,
        )
