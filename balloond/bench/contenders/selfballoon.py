"""Xen guest self-ballooning (Linux drivers/xen/xen-selfballoon.c, removed in 5.3; figures in
shared/notes/anchors.md "Xen guest self-ballooning").

Runs inside each guest: it reads its own Committed_AS (here from the guest agent's report;
a guest without the agent does not run it and stays where it is). Every 5 s
`goal = Committed_AS + totalreserve + reserved` with `reserved` = 10 % of RAM; shrink by
`(cur - goal) / 8` per run, grow to the goal at once. Never below the driver's floor on
usable memory u (MiB): u < 64: 16 + (u - 16) / 2; u < 512: 40 + (u - 40) / 8; else
99 + (u - 99) / 32 (`selfballoon_min_usable_mb`, which we raise to the operator's floor).
It knows nothing of the host: it deflates whenever Committed_AS grows.
"""

from __future__ import annotations

from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, guest_configs, running
from balloond.sim.scenario import Scenario
from balloond.units import MiB

INTERVAL = 5.0  # selfballoon_interval
RESERVED_RATIO = 0.10  # selfballoon_reserved_mb default: 10 % of RAM
SHRINK_DIVISOR = 8  # selfballoon_downhysteresis
# totalreserve_pages (kernel watermarks and lowmem reserves): an assumption, ~32 MiB for the
# 1-8 GiB guests of the scenarios (not from the anchors).
TOTALRESERVE = 32 * MiB


def min_usable(maxmem: int) -> int:
    """The driver's floor on usable memory, from its MiB formula."""
    u = maxmem // MiB
    if u < 64:
        floor = 16 + (u - 16) // 2
    elif u < 512:
        floor = 40 + (u - 40) // 8
    else:
        floor = 99 + (u - 99) // 32
    return max(0, floor) * MiB


class Selfballoon:
    name = "selfballoon"
    interval = INTERVAL
    uses_reports = True

    def __init__(self, scenario: Scenario) -> None:
        self.configs = guest_configs(scenario)

    def decide(self, obs: Observation) -> Mapping[str, int]:
        targets = {}
        for dom in running(obs):
            report = dom.report
            if report is None or report.committed_as is None or report.mem_total is None:
                continue
            outside = dom.current - report.mem_total  # balloon size minus usable memory
            goal = report.committed_as + TOTALRESERVE + int(RESERVED_RATIO * dom.maxmem)
            floor = max(min_usable(dom.maxmem), self.configs[dom.name].floor - outside)
            goal = max(goal, floor) + outside
            if goal < dom.current:
                goal = dom.current - (dom.current - goal) // SHRINK_DIVISOR
            goal = min(goal, dom.maxmem)
            if goal != dom.current:
                targets[dom.name] = goal
        return targets
