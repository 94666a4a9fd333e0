"""VMware ESX Server's share-based allocation with the idle memory tax (Waldspurger, "Memory
Resource Management in VMware ESX Server", OSDI 2002, sections 5.1-5.3; ESX Server 3 and
vSphere resource management guides for the defaults; figures in shared/notes/anchors.md
"VMware").

Every ALLOC_PERIOD (Mem.AllocPeriod, 15 s) ESX decides each VM's allocation. While the VMs'
configured sizes fit the host, it reclaims nothing (every balloon deflated, each VM at its
maxmem). Otherwise memory goes by min-funding revocation: pages are taken from the VM with
the fewest shares per page, with idle pages taxed,

    rho = S / (P x (f + k x (1 - f))),   k = 1 / (1 - tau),

S the VM's shares (the scenario's weight), P its pages, f the fraction of them in active use
and tau the idle tax (Mem.IdleTax, 75 %: an idle page costs four active ones). Taking pages
from the lowest rho until the pool fits is the allocation at which every VM has the same rho,
found here by bisection. Bounds: the reservation (the operator's floor) and, since
the balloon reclaims at most CTL_MAX_PERCENT of a VM (Mem.CtlMaxPercent, 65 %), 35 % of
maxmem; beyond that ESX swaps at the hypervisor, which the simulator does not model. The pool
is what the host holds for its VMs less the operator's reserve (the free target every
contender keeps).

f is measured by sampling: 100 random pages per SAMPLE_PERIOD (Mem.SamplePeriod, 30 s in ESX
Server 3), smoothed by a slow and a fast moving average, the larger of those and of the
newest sample taken so that a VM ramps up at once and gives back slowly. The paper does not
give the averages' gains: SLOW_GAIN and FAST_GAIN are our assumption. Touched pages are
what the host cannot see through the balloon statistics; the sample stands in for them:
used memory (MemTotal - MemAvailable) over the balloon, and 1 while the guest swaps in or
faults pages back (a thrashing guest touches everything it has).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from balloond.bench.contenders.base import Observation, guest_configs, running
from balloond.model import DomainSnapshot
from balloond.sim.scenario import Scenario
from balloond.units import PAGE

ALLOC_PERIOD = 15.0  # Mem.AllocPeriod: seconds between reallocations
SAMPLE_PERIOD = 30.0  # Mem.SamplePeriod: seconds of sampling per estimate
IDLE_TAX = 0.75  # Mem.IdleTax
CTL_MAX_PERCENT = 0.65  # Mem.CtlMaxPercent: the balloon takes at most this share of a VM
SLOW_GAIN = 0.1  # assumption: weight of a new sample in the slow average
FAST_GAIN = 0.5  # assumption: ... and in the fast one
# The sample is 1 (everything touched) while the guest swaps in more than this (16 pages/s,
# as balloond's own threshold) or faults this many pages back per second.
SWAP_IN_TOUCHED = 16 * PAGE
FAULTS_TOUCHED = 200.0
BISECTIONS = 60


@dataclass
class _Sampling:
    """One VM's working-set estimate."""

    slow: float
    fast: float
    newest: float
    counters: tuple[int, int, float] | None = None  # swap_in, major_faults, at (epoch)

    def active(self) -> float:
        return max(self.slow, self.fast, self.newest)


class Esx:
    name = "esx"
    interval = ALLOC_PERIOD
    uses_reports = False

    def __init__(self, scenario: Scenario) -> None:
        self.configs = guest_configs(scenario)
        self.samples: dict[str, _Sampling] = {}
        self.sampled_at: float | None = None

    def decide(self, obs: Observation) -> Mapping[str, int]:
        domains = running(obs)
        due = self.sampled_at is None or obs.t - self.sampled_at >= SAMPLE_PERIOD - 1e-9
        if due:
            self.sampled_at = obs.t
            for dom in domains:
                self._sample(dom, obs.now)
        pool = obs.snapshot.host.free + sum(d.current for d in domains) - obs.reserve
        if sum(d.maxmem for d in domains) <= pool:
            return {d.name: d.maxmem for d in domains if d.current != d.maxmem}
        sizes = self._allocate(domains, pool)
        return {d.name: sizes[d.name] for d in domains if sizes[d.name] != d.current}

    def _sample(self, dom: DomainSnapshot, now: float) -> None:
        fraction = _touched(dom, self.samples.get(dom.name), now)
        stats = dom.stats
        counters = None
        if stats is not None and stats.swap_in is not None and stats.major_faults is not None:
            counters = (stats.swap_in, stats.major_faults, now)
        found = self.samples.get(dom.name)
        if found is None:
            self.samples[dom.name] = _Sampling(fraction, fraction, fraction, counters)
            return
        found.slow += (fraction - found.slow) * SLOW_GAIN
        found.fast += (fraction - found.fast) * FAST_GAIN
        found.newest = fraction
        found.counters = counters

    def _allocate(self, domains: list[DomainSnapshot], pool: int) -> dict[str, int]:
        """Every VM's size at the rho that makes the sizes fill the pool."""
        k = 1.0 / (1.0 - IDLE_TAX)
        bounds = {}
        for dom in domains:
            floor = min(self.configs[dom.name].floor, dom.maxmem)
            least = max(floor, int(dom.maxmem * (1.0 - CTL_MAX_PERCENT)))
            sampling = self.samples.get(dom.name)
            active = int(dom.current * (sampling.active() if sampling else 1.0))
            bounds[dom.name] = (least, dom.maxmem, active, self.configs[dom.name].weight)

        def size(name: str, rho: float) -> int:
            least, most, active, shares = bounds[name]
            cost = shares / rho  # the adjusted pages this VM's shares pay for at this rho
            pages = cost if cost <= active else active + (cost - active) / k
            return max(least, min(most, int(pages)))

        low, high = 1e-12, 1e12  # shares per byte: tiny gives everyone maxmem, huge the floor
        for _ in range(BISECTIONS):
            rho = (low * high) ** 0.5
            if sum(size(d.name, rho) for d in domains) > pool:
                low = rho
            else:
                high = rho
        return {d.name: size(d.name, high) // PAGE * PAGE for d in domains}


def _touched(dom: DomainSnapshot, before: _Sampling | None, now: float) -> float:
    """The sampled share of the VM's pages in active use (see the module docstring)."""
    stats = dom.stats
    if stats is None or stats.total is None or stats.available is None or dom.current <= 0:
        return 1.0  # nothing to go on: count every page as active (no tax)
    if before is not None and before.counters is not None:
        swap_in, faults, at = before.counters
        elapsed = now - at
        if elapsed > 0 and stats.swap_in is not None and stats.major_faults is not None:
            swapping = (stats.swap_in - swap_in) / elapsed >= SWAP_IN_TOUCHED
            faulting = (stats.major_faults - faults) / elapsed >= FAULTS_TOUCHED
            if swapping or faulting:
                return 1.0
    used = max(0, stats.total - stats.available)
    return min(1.0, used / dom.current)
