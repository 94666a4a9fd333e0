"""The oracle: knows every guest's future need and the host's exact state, so it holds each
guest at the peak of what it will be entitled to over the next few seconds (time for the
balloon to get there) and not a byte more. It respects the same operator floors as every
other contender: it is the upper bound for a controller bound by the same configuration,
not for one that may ignore it.

It keeps the fair share exactly (`balloond.bench.fairshare`, the promise of docs/policies.md).
A guest's entitlement, max(floor, min(need, fair share)), is computed by the same function on
the same needs as the benchmark's figures, for each of the coming steps. Each guest must hold
at the next step what keeps every coming entitlement within its balloon's reach (256 MiB/s,
a slow balloon an eighth of that); it may hold up to its coming peak, but no more than the
others' coming entitlements leave it, less what its balloon can give back by then; the pool
is shared by weight between the two. Its `unfair_shortfall_ratio` is therefore 0
(tests/test_bench_fairness.py checks every step of every shipped scenario). Where the fair
share itself moves faster than a balloon (five guests rising at once, whose growth the
lightest guest alone must pay, 450 MiB/s on overload), keeping it means growing the heavy
guests before the light one has given back: free memory then dips below the reserve for a
few seconds (overload: 6 s; big-and-small: 1 s), which the tables show."""

from __future__ import annotations

from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, guest_configs, running
from balloond.bench.fairshare import fair_shares, givable, movable
from balloond.core.share import water_fill
from balloond.sim.guest import BALLOON_RATE, SLOW_FACTOR, SimGuest
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
        sim, step = self.sim, self.sim.scenario.step
        domains = [d for d in running(obs) if movable(sim.guests[d.name])]
        guests = [sim.guests[d.name] for d in domains]
        pool = givable(sim, guests)
        horizon = max((lookahead(g) for g in guests), default=0.0)
        future = [self._entitled(obs.t + k * step) for k in range(1, int(horizon / step) + 1)]
        lows, highs, weights = [], [], []
        for guest in guests:
            low, high = self._bounds(guest, future, pool)
            lows.append(low)
            highs.append(high)
            weights.append(self.configs[guest.spec.name].weight)
        tight = sum(highs) > pool
        wants = water_fill(lows, highs, weights, pool) if tight else highs
        targets = {}
        for dom, target in zip(domains, wants, strict=True):
            last = self.issued.get(dom.name, sim.guests[dom.name].target)
            # Small shrinks are skipped only when the host has room: under contention every
            # byte above a guest's share is someone else's.
            if target > last or last - target > DEADBAND or (tight and target < last):
                targets[dom.name] = target
        self.issued.update(targets)
        return targets

    def _bounds(self, guest: SimGuest, future: list[dict[str, int]], pool: int) -> tuple[int, int]:
        """(must hold, may hold) at the next step. `future[k]` is every guest's entitlement
        k + 1 steps ahead. A balloon moves `rate` per step: to be at its entitlement later it
        must be within reach of it now, and to leave the others theirs later it must start
        giving back in time (the most it may hold at a step is what the others' entitlements
        leave of the pool)."""
        name, rate = guest.spec.name, balloon_step(guest, self.sim.scenario.step)
        steps = [
            k for k in range(len(future)) if (k + 1) * self.sim.scenario.step <= lookahead(guest)
        ]
        must = max(future[k][name] - k * rate for k in steps)
        peak = max(future[k][name] for k in steps)
        room = min(pool - sum(future[k].values()) + future[k][name] + k * rate for k in steps)
        # A shrink takes time too: the balloon cannot be below this by the next step.
        must = max(must, guest.current - rate)
        return must, max(must, min(peak, room))

    def _entitled(self, t: float) -> dict[str, int]:
        """Every running guest's min(need, fair share) at scenario time `t`, floors
        included (the oracle keeps a guest at its floor even when it needs less)."""
        sim = self.sim
        when = sim.trace_time(t)
        needs = {g.spec.name: g.need_at(when) for g in sim.active()}
        shares = fair_shares(sim, self.configs, needs)
        return {
            g.spec.name: max(
                min(self.configs[g.spec.name].floor, g.maxmem),
                shares[g.spec.name].entitled(min(needs[g.spec.name], g.maxmem)),
            )
            for g in sim.active()
        }


def balloon_step(guest: SimGuest, step: float) -> int:
    """How far the guest's balloon moves in one step (docs/simulator.md)."""
    return int(BALLOON_RATE * step / (SLOW_FACTOR if guest.spec.behaviour == "slow" else 1))


def lookahead(guest: SimGuest) -> float:
    """How far ahead a guest's balloon must start moving: a slow balloon takes longer."""
    return LOOKAHEAD * (SLOW_FACTOR if guest.spec.behaviour == "slow" else 1)
