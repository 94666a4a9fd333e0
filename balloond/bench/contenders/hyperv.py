"""Hyper-V Dynamic Memory (Linux drivers/hv/hv_balloon.c for the guest's side;
learn.microsoft.com "Hyper-V Dynamic Memory Overview" and "Dynamic Memory configuration"
for the host's; figures in shared/notes/anchors.md "Hyper-V").

The guest's balloon driver reports every second (post_status, at most once per HZ) its
committed memory: Committed_AS plus the balloon floor its driver keeps
(compute_balloon_floor(), a piecewise-linear function of the guest's RAM). Here that report
is the guest agent's (a guest without integration services, here without the agent, is not
managed and keeps its startup memory). The host wants each VM at its demand plus the memory
buffer (20 % by default: "a VM demanding 1000 MB gets 1200 MB"), within its minimum and
maximum RAM (the operator's floor and the maxmem), in 2 MiB units. When the host cannot
give every VM its want, memory weight (1..10000, default 5000; here the scenario's weight)
decides: the pool above the minimums is shared by weight, nobody above its want. The pool
is what the host holds for its VMs less the operator's reserve (the free target every
contender keeps). The guest's report also counts its ballooned pages (so that the host does
not ask for them twice); the host knows its own balloon, so only Committed_AS and the floor
make the demand here, plus the part of the VM its kernel never sees (balloon - MemTotal).
"""

from __future__ import annotations

from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, guest_configs, running
from balloond.core.share import water_fill
from balloond.model import DomainSnapshot
from balloond.sim.scenario import Scenario
from balloond.units import MiB

REPORT_PERIOD = 1.0  # post_status: one report per second; the host balancer runs as often
BUFFER = 0.20  # the memory buffer's default
UNIT = 2 * MiB  # balloon and hot-add operations are in 2 MiB units
WEIGHT_MIN, WEIGHT_MAX = 1, 10_000  # memory weight's range


def balloon_floor(total: int) -> int:
    """compute_balloon_floor(): memory the guest's driver never gives up, by its RAM (the
    kernel's table: 128 MiB -> 72, 512 -> 168, 2048 -> 360, 8192 -> 744, 32768 -> 1512)."""
    if total < 128 * MiB:
        return 8 * MiB + total // 2
    if total < 512 * MiB:
        return 40 * MiB + total // 4
    if total < 2048 * MiB:
        return 104 * MiB + total // 8
    if total < 8192 * MiB:
        return 232 * MiB + total // 16
    return 488 * MiB + total // 32


class HyperV:
    name = "hyperv"
    interval = REPORT_PERIOD
    uses_reports = True

    def __init__(self, scenario: Scenario) -> None:
        self.configs = guest_configs(scenario)

    def decide(self, obs: Observation) -> Mapping[str, int]:
        domains = running(obs)
        managed = [(d, w) for d in domains if (w := self._want(d)) is not None]
        if not managed:
            return {}
        pool = obs.snapshot.host.free + sum(d.current for d in domains) - obs.reserve
        pool -= sum(d.current for d in domains if all(d is not m for m, _ in managed))
        floors = [min(self.configs[d.name].floor, d.maxmem) for d, _ in managed]
        wants = [max(want, floor) for (_, want), floor in zip(managed, floors, strict=True)]
        weights = [
            max(WEIGHT_MIN, min(WEIGHT_MAX, self.configs[d.name].weight)) for d, _ in managed
        ]
        sizes = water_fill(floors, wants, weights, pool)
        targets = {}
        for (dom, _), size in zip(managed, sizes, strict=True):
            size = size // UNIT * UNIT
            if size != dom.current:
                targets[dom.name] = size
        return targets

    def _want(self, dom: DomainSnapshot) -> int | None:
        """The VM's demand plus the buffer, in [0, maxmem]; None: not managed."""
        report = dom.report
        if report is None or report.committed_as is None or report.mem_total is None:
            return None
        unseen = max(0, dom.current - report.mem_total)  # balloon the guest's kernel never sees
        demand = report.committed_as + balloon_floor(report.mem_total) + unseen
        want = int(demand * (1.0 + BUFFER))
        return min(dom.maxmem, -(-want // UNIT) * UNIT)
