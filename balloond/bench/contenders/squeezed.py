"""XAPI squeezed's proportional law (xapi-project/xen-api ocaml/squeezed/lib/squeeze.ml,
src/squeeze_xen.ml; figures in shared/notes/anchors.md "XAPI squeezed").

Ignores guest pressure. Every guest sits at `dyn_min + gamma * (dyn_max - dyn_min)` with one
`gamma` for the host, chosen so the host keeps its free target. When any new target frees
memory, only freeing targets are issued that round (growth waits). A domain that does not
move toward its target for 5 s is declared stuck and left out (its range collapses to its
current size). dyn_min is the operator's floor, dyn_max the maxmem.
"""

from __future__ import annotations

from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, guest_configs, running
from balloond.model import DomainSnapshot
from balloond.sim.scenario import Scenario
from balloond.units import KiB, MiB

EMERGENCY_POOL = 64 * MiB + 8 * MiB  # squeezed's host free target: 64 MiB pool + 8 MiB
INACCURACY = 4 * KiB  # per domain
STUCK_AFTER = 5.0  # seconds without progress toward the target
LOOP = 1.0  # squeezed's loop waits 1 s


class Squeezed:
    name = "squeezed"
    interval = LOOP
    uses_reports = False

    def __init__(self, scenario: Scenario) -> None:
        self.configs = guest_configs(scenario)
        self.progress: dict[str, tuple[int, float]] = {}  # name -> (current, since)
        self.targets: dict[str, int] = {}
        self.stuck: set[str] = set()

    def decide(self, obs: Observation) -> Mapping[str, int]:
        domains = running(obs)
        self._track(domains, obs.t)
        host_target = obs.reserve + EMERGENCY_POOL  # the operator's reserve, plus its pool
        ranges = {}
        for dom in domains:
            low = min(self.configs[dom.name].floor, dom.maxmem)
            ranges[dom.name] = (
                (dom.current, dom.current) if dom.name in self.stuck else (low, dom.maxmem)
            )
        reclaimable = sum(max(0, d.current - ranges[d.name][0] - 2 * INACCURACY) for d in domains)
        surplus = max(0, obs.snapshot.host.free + reclaimable - host_target)
        span = sum(high - low for low, high in ranges.values())
        gamma = min(1.0, max(0.0, surplus / span)) if span > 0 else 0.0
        wanted = {
            d.name: int(ranges[d.name][0] + gamma * (ranges[d.name][1] - ranges[d.name][0]))
            for d in domains
            if d.name not in self.stuck
        }
        current = {d.name: d.current for d in domains}
        freeing = {n: t for n, t in wanted.items() if t < current[n]}
        issue = freeing if freeing else wanted
        changed = {
            n: t
            for n, t in issue.items()
            if abs(t - self.targets.get(n, current[n])) > 2 * INACCURACY
        }
        self.targets.update(changed)
        return changed

    def _track(self, domains: list[DomainSnapshot], t: float) -> None:
        for dom in domains:
            target = self.targets.get(dom.name)
            last = self.progress.get(dom.name)
            if target is None or abs(dom.current - target) <= 2 * INACCURACY:
                self.progress[dom.name] = (dom.current, t)
                self.stuck.discard(dom.name)
            elif last is None or dom.current != last[0]:
                self.progress[dom.name] = (dom.current, t)
            elif t - last[1] >= STUCK_AFTER:
                self.stuck.add(dom.name)
