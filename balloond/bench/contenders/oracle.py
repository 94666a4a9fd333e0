"""The oracle: knows every guest's future demand and the host's exact state, so it holds each
guest at the peak of its need over the next few seconds (time for the balloon to get there)
and not a byte more. Under contention it shares by weight above the floors. It respects the
same operator floors as every other contender: it is the upper bound for a controller bound
by the same configuration, not for one that may ignore it."""

from __future__ import annotations

from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, guest_configs, running
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
        domains = running(obs)
        t = sim.trace_time(obs.t)
        want = {}
        for dom in domains:
            guest = sim.guests[dom.name]
            floor = min(self.configs[dom.name].floor, dom.maxmem)
            want[dom.name] = max(floor, min(dom.maxmem, guest.peak_need(t, t + LOOKAHEAD)))
        room = sim.memory - sim.used - obs.reserve
        if sum(want.values()) > room:
            want = self._share(want, room)
        targets = {}
        for name, target in want.items():
            last = self.issued.get(name, sim.guests[name].target)
            if target > last or last - target > DEADBAND:
                targets[name] = target
        self.issued.update(targets)
        return targets

    def _share(self, want: dict[str, int], room: int) -> dict[str, int]:
        """Water-fill `room` by weight: floors first, nobody above what it wants."""
        floors = {n: min(self.configs[n].floor, w) for n, w in want.items()}
        given = dict(floors)
        left = room - sum(floors.values())
        open_ = {n for n in want if want[n] > given[n]}
        while left > MiB and open_:
            weights = sum(self.configs[n].weight for n in open_)
            spent = 0
            for name in list(open_):
                share = left * self.configs[name].weight // weights
                add = min(share, want[name] - given[name])
                given[name] += add
                spent += add
                if given[name] >= want[name]:
                    open_.discard(name)
            left -= spent
            if spent == 0:
                break
        return given
