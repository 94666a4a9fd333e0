"""The oracle: knows every guest's future need and the host's exact state, so it holds each
guest at the peak of its need over the next few seconds (time for the balloon to get there)
and not a byte more. It respects the same operator floors as every other contender: it is
the upper bound for a controller bound by the same configuration, not for one that may
ignore it.

It keeps the fair share exactly (`balloond.bench.fairshare`, the promise of docs/policies.md):
every guest is first given what it is entitled to at the next step, min(need, fair share),
computed by the same function on the same inputs as the benchmark's figures; only what is
left is poured, by weight, toward the peaks ahead. Its `unfair_shortfall_ratio` is 0 by
construction (tests/test_bench_fairness.py runs it on every shipped scenario)."""

from __future__ import annotations

from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, guest_configs, running
from balloond.bench.fairshare import fair_shares, givable, movable
from balloond.core.share import water_fill
from balloond.sim.guest import SLOW_FACTOR, SimGuest
from balloond.sim.host import SimHost
from balloond.sim.scenario import Scenario
from balloond.units import MiB

LOOKAHEAD = 10.0  # seconds: a 2.5 GiB rise takes 10 s at the balloon's 256 MiB/s
DEADBAND = 8 * MiB  # shrinks smaller than this are not worth a balloon operation


class Oracle:
    name = "oracle"
    interval = 1.0
    uses_reports = False

    def __init__(self, scenario: Scenario, sim: SimHost) -> None:
        self.configs = guest_configs(scenario)
        self.sim = sim
        self.issued: dict[str, int] = {}

    def decide(self, obs: Observation) -> Mapping[str, int]:
        sim = self.sim
        now, step = sim.trace_time(obs.t), sim.scenario.step
        later = sim.trace_time(obs.t + step)  # when the figures next sample the guests
        needs = {g.spec.name: g.need_at(later) for g in sim.active()}
        shares = fair_shares(sim, self.configs, needs)
        domains = [d for d in running(obs) if movable(sim.guests[d.name])]
        owed, peaks, weights = [], [], []
        for dom in domains:
            guest = sim.guests[dom.name]
            floor = min(self.configs[dom.name].floor, dom.maxmem)
            entitled = shares[dom.name].entitled(min(needs[dom.name], dom.maxmem))
            peak = max(floor, min(dom.maxmem, guest.peak_need(now, now + lookahead(guest))))
            owed.append(entitled)
            peaks.append(max(peak, entitled))
            weights.append(self.configs[dom.name].weight)
        pool = givable(sim, (sim.guests[d.name] for d in domains))
        tight = sum(peaks) > pool
        wants = water_fill(owed, peaks, weights, pool) if tight else peaks
        targets = {}
        for dom, target in zip(domains, wants, strict=True):
            last = self.issued.get(dom.name, sim.guests[dom.name].target)
            # Small shrinks are skipped only when the host has room: under contention every
            # byte above a guest's share is someone else's.
            if target > last or last - target > DEADBAND or (tight and target < last):
                targets[dom.name] = target
        self.issued.update(targets)
        return targets


def lookahead(guest: SimGuest) -> float:
    """How far ahead a guest's balloon must start moving: a slow balloon takes longer."""
    return LOOKAHEAD * (SLOW_FACTOR if guest.spec.behaviour == "slow" else 1)
