"""oVirt MoM's default balloon policy (oVirt/mom doc/balloon.rules, mom/PolicyEngine.py;
figures in shared/notes/anchors.md "oVirt MoM").

libvirt statistics only. Collection every 5 s, policy every 10 s, averages over the last 10
samples. `used = avg(balloon_cur) - avg(mem_unused)` counts page cache as used. The host is
under pressure below 20 % free (critical 5 %); then every guest shrinks toward
`used + gfp * cur`, at most 5 % per run; otherwise every guest below its maximum grows by
at least 5 %. Changes under 0.25 % of cur are skipped. balloon_min is the operator's floor
(libvirt `<memtune><min_guarantee>`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, guest_configs, running
from balloond.sim.scenario import Scenario

PRESSURE_THRESHOLD = 0.20  # balloon.rules: pressure_threshold
PRESSURE_CRITICAL = 0.05  # balloon.rules: pressure_critical
MIN_GUEST_FREE = 0.20  # balloon.rules: min_guest_free_percent
MAX_CHANGE = 0.05  # balloon.rules: max_balloon_change_percent
CHANGE_BIG_ENOUGH = 0.0025  # balloon.rules: change_big_enough (0.25 % of cur)
SAMPLES = 10  # PolicyEngine: averages over the last 10 samples
COLLECT_EVERY = 5.0  # guest and host collection interval, seconds
POLICY_EVERY = 10.0  # policy interval, seconds


class Mom:
    name = "mom"
    interval = COLLECT_EVERY
    uses_reports = False

    def __init__(self, scenario: Scenario) -> None:
        self.configs = guest_configs(scenario)
        self.cur: dict[str, deque[int]] = {}
        self.unused: dict[str, deque[int]] = {}
        self.last_policy = -POLICY_EVERY

    def decide(self, obs: Observation) -> Mapping[str, int]:
        domains = running(obs)
        for dom in domains:
            if dom.stats is None or dom.stats.unused is None:
                continue
            self.cur.setdefault(dom.name, deque(maxlen=SAMPLES)).append(dom.current)
            self.unused.setdefault(dom.name, deque(maxlen=SAMPLES)).append(dom.stats.unused)
        if obs.t - self.last_policy < POLICY_EVERY - 1e-9:
            return {}
        self.last_policy = obs.t
        host = obs.snapshot.host
        host_free = host.free / host.total
        targets = {}
        for dom in domains:
            if dom.name not in self.cur:
                continue
            target = self._target(dom.name, dom.current, dom.maxmem, host_free)
            if target is not None:
                targets[dom.name] = target
        return targets

    def _target(self, name: str, cur: int, maxmem: int, host_free: float) -> int | None:
        used = _avg(self.cur[name]) - _avg(self.unused[name])
        balloon_min = self.configs[name].floor
        if host_free < PRESSURE_THRESHOLD:
            if host_free <= PRESSURE_CRITICAL:
                gfp = host_free - 0.05
            else:
                gfp = MIN_GUEST_FREE * host_free / PRESSURE_THRESHOLD
            target = int(max(cur * (1 - MAX_CHANGE), balloon_min, used + gfp * cur))
            shrinking = target <= cur
        else:
            if cur >= maxmem:
                return None
            target = int(
                min(maxmem, max(cur * (1 + MAX_CHANGE), balloon_min, used + MIN_GUEST_FREE * cur))
            )
            shrinking = False
        if shrinking == (target > cur) or abs(target - cur) <= CHANGE_BIG_ENOUGH * cur:
            return None
        return target


def _avg(values: deque[int]) -> float:
    return sum(values) / len(values)
