"""Drive one scenario with one contender on a fresh simulated host (manual clock).

Every `contender.interval` seconds the runner collects an observation through the backend's
public interface (the same calls the daemon makes: `host()`, `domains()`, and `reports()`
only for contenders with an in-guest component), asks the contender for targets and applies
them with `set_target` (targets are clamped to what the backend accepts, as a careful
deployment would). After every step the recorder samples what the guests really went
through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from balloond.backend.simulated import MIN_TARGET, SimulatedHost
from balloond.bench.contenders import Contender, Observation, make
from balloond.bench.contenders.base import guest_configs
from balloond.bench.metrics import Figures, Recorder, Series
from balloond.errors import BackendError
from balloond.model import Snapshot
from balloond.sim.scenario import Scenario

EPOCH = 1_800_000_000.0  # a fixed start instant: runs are reproducible to the byte


@dataclass(frozen=True, slots=True)
class Run:
    figures: Figures
    series: dict[str, Series]
    errors: int  # set_target calls the backend refused


def observe(host: SimulatedHost, contender: Contender) -> Observation:
    domains = host.domains()
    if contender.uses_reports:
        reports = host.reports()
        domains = [dataclasses.replace(d, report=reports.get(d.uuid)) for d in domains]
    now = host.now()
    snapshot = Snapshot(taken_at=now, host=host.host(), domains=tuple(domains))
    return Observation(now=now, t=host.sim.t, snapshot=snapshot, reserve=host.scenario.host.reserve)


def run(scenario: Scenario, contender_name: str) -> Run:
    host = SimulatedHost.from_scenario(
        scenario, clock="manual", epoch=EPOCH, uri=f"sim://bench-{scenario.name}-{contender_name}"
    )
    try:
        contender = make(contender_name, scenario, host.sim)
        recorder = Recorder(host.sim, guest_configs(scenario))
        errors = 0
        steps = round(scenario.duration / scenario.step)
        next_decision = 0.0
        for _ in range(steps):
            if host.sim.t >= next_decision - 1e-9:
                ops, failed = act(host, contender, observe(host, contender))
                recorder.ops += ops
                errors += failed
                next_decision += contender.interval
            host.advance(scenario.step)
            recorder.sample()
        return Run(recorder.figures(scenario.name, contender_name), recorder.series, errors)
    finally:
        host.close()


def act(host: SimulatedHost, contender: Contender, obs: Observation) -> tuple[int, int]:
    """Ask `contender` for targets and apply them, shrinks first. Returns (applied, refused)."""
    targets = contender.decide(obs)
    by_name = {d.name: d for d in obs.snapshot.domains}
    ops = failed = 0
    order = sorted(
        (target - by_name[name].current, name, target)
        for name, target in targets.items()
        if name in by_name
    )
    for _, name, target in order:  # shrinks first: memory is freed before it is promised
        dom = by_name[name]
        target = max(MIN_TARGET, min(int(target), dom.maxmem))
        if target == host.sim.guests[name].target:
            continue
        try:
            host.set_target(name, target)
            ops += 1
        except BackendError:
            failed += 1
            rejected = getattr(contender, "rejected", None)
            if rejected is not None:
                rejected(dom.uuid)
    return ops, failed


def run_all(scenarios: Sequence[Scenario], contenders: Sequence[str]) -> list[Run]:
    return [run(scenario, name) for scenario in scenarios for name in contenders]
