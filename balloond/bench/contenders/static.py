"""Static allocation: no ballooning, every guest at its maxmem (the baseline of 'do nothing')."""

from __future__ import annotations

from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, running
from balloond.sim.scenario import Scenario


class Static:
    name = "static"
    interval = 10.0
    uses_reports = False

    def __init__(self, scenario: Scenario) -> None:
        del scenario

    def decide(self, obs: Observation) -> Mapping[str, int]:
        return {d.name: d.maxmem for d in running(obs) if d.current != d.maxmem}
