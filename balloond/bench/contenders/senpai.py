"""Senpai run per guest (facebookincubator/senpai senpai.py, the 1 s loop of `Senpai.tick`;
oomd's Senpai plugin and TMO, ASPLOS 2022, use the same law; figures in
shared/notes/anchors.md "Senpai").

Senpai sizes one cgroup's memory.high from its own memory pressure: here each guest's
balloon target, from the guest's PSI as its agent reports it (a guest without the agent
has no PSI to read and is left where it is). Every second it adds the stall since the last
tick (`some` total, microseconds) to an integral S:

- S > T (PRESSURE, 10 ms): back off at once, limit x (1 + min((S / T / COEFF_BACKOFF)², 1)
  x MAX_BACKOFF): up to double the limit in one tick; then wait INTERVAL - 1 ticks;
- otherwise, once INTERVAL ticks have passed quietly: probe down, limit x (1 - min((T /
  max(S, 1) / COEFF_PROBE)², 1) x MAX_PROBE): at most 1 % per 6 s;
- every adjustment starts the integral again.

The limit stays within [floor, maxmem] (senpai's --min-size and --max-size: the operator's
floor and the domain's maxmem), page-aligned, and starts at the balloon's size (senpai
resets it to memory.current whenever the limit is not the one it wrote). Senpai knows
nothing of the host or of weights: a grow is only as real as the host's free memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from balloond.bench.contenders.base import Observation, guest_configs, running
from balloond.sim.scenario import Scenario
from balloond.units import PAGE

TICK = 1.0  # Senpai.run: time.sleep(1) between ticks
INTERVAL = 6  # --interval: ticks between probes (and after a back-off)
PRESSURE = 10_000  # --pressure: 10 ms of stall (µs) per interval is the target
MAX_PROBE = 0.01  # --max-probe: at most 1 % down per probe
MAX_BACKOFF = 1.0  # --max-backoff: at most +100 % per back-off
COEFF_PROBE = 10  # --coeff-probe: the probe is at its largest at 1/10 of the target stall
COEFF_BACKOFF = 20  # --coeff-backoff: the back-off is at its largest at 20x the target
MICROSECONDS = 1_000_000


@dataclass
class _Cgroup:
    """One guest's Senpai state (the `Senpai` object of senpai.py)."""

    limit: int  # bytes: the balloon target Senpai last wrote
    integral: float = 0.0  # stall since the last adjustment, µs
    grace: int = INTERVAL  # ticks left before the next probe
    seq: int = -1  # the last report read (a report read twice adds no stall)


class Senpai:
    name = "senpai"
    interval = TICK
    uses_reports = True

    def __init__(self, scenario: Scenario) -> None:
        self.configs = guest_configs(scenario)
        self.cgroups: dict[str, _Cgroup] = {}

    def decide(self, obs: Observation) -> Mapping[str, int]:
        targets = {}
        for dom in running(obs):
            report = dom.report
            if report is None or report.psi_some is None:
                continue
            group = self.cgroups.get(dom.name)
            if group is None:
                group = self.cgroups[dom.name] = _Cgroup(limit=dom.current)
            if report.seq != group.seq:
                group.seq = report.seq
                group.integral += report.psi_some * TICK * MICROSECONDS
            factor = self._tick(group)
            if factor is None:
                continue
            floor = min(self.configs[dom.name].floor, dom.maxmem)
            limit = int(group.limit + group.limit * factor)
            group.limit = max(floor, min(dom.maxmem, limit)) // PAGE * PAGE
            targets[dom.name] = group.limit
        return targets

    @staticmethod
    def _tick(group: _Cgroup) -> float | None:
        """Senpai.tick: the factor to scale the limit by this tick, or None."""
        if group.integral > PRESSURE:
            err = group.integral / PRESSURE
            adjust = min((err / COEFF_BACKOFF) ** 2 * MAX_BACKOFF, MAX_BACKOFF)
            group.grace = INTERVAL - 1
            group.integral = 0.0
            return adjust
        if group.grace:
            group.grace -= 1
            return None
        err = PRESSURE / max(group.integral, 1.0)
        adjust = min((err / COEFF_PROBE) ** 2 * MAX_PROBE, MAX_PROBE)
        group.grace = INTERVAL - 1
        group.integral = 0.0
        return -adjust
