"""Drive one scenario with one contender on a fresh simulated host (manual clock).

Every `contender.interval` seconds the runner collects an observation through the backend's
public interface (the same calls the daemon makes: `host()`, `domains()`, and `reports()`
only for contenders with an in-guest component), asks the contender for targets and applies
them with `set_target` (targets are clamped to what the backend accepts, as a careful
deployment would). balloond is the daemon itself (`TicksItself`): at its interval the runner
only calls its tick, which does all of that through the backend as in production. After
every step the recorder samples what the guests really went through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from balloond.backend.simulated import MIN_TARGET, SimulatedHost
from balloond.bench.contenders import Contender, Observation, TicksItself, make
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


Watch = Callable[[Contender | TicksItself], None]


def run(
    scenario: Scenario,
    contender_name: str,
    *,
    steps: int | None = None,
    watch: Watch | None = None,
) -> Run:
    """The whole scenario (or its first `steps` steps); `watch` is called with the contender
    after each of its ticks (the behaviour fingerprint reads balloond's decisions there)."""
    host = SimulatedHost.from_scenario(
        scenario, clock="manual", epoch=EPOCH, uri=f"sim://bench-{scenario.name}-{contender_name}"
    )
    try:
        contender = make(contender_name, scenario, host)
        recorder = Recorder(host.sim, guest_configs(scenario))
        errors = 0
        total = round(scenario.duration / scenario.step)
        next_decision = 0.0
        for _ in range(total if steps is None else min(steps, total)):
            if host.sim.t >= next_decision - 1e-9:
                ops, failed = tick(host, contender)
                recorder.ops += ops
                errors += failed
                next_decision += contender.interval
                if watch is not None:
                    watch(contender)
            host.advance(scenario.step)
            recorder.sample()
        return Run(recorder.figures(scenario.name, contender_name), recorder.series, errors)
    finally:
        host.close()


def tick(host: SimulatedHost, contender: Contender | TicksItself) -> tuple[int, int]:
    """One tick of `contender`: (targets set, targets refused)."""
    if isinstance(contender, TicksItself):
        return contender.tick()
    return act(host, contender, observe(host, contender))


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
        target = max(MIN_TARGET, min(int(target), by_name[name].maxmem))
        if target == host.sim.guests[name].target:
            continue
        try:
            host.set_target(name, target)
            ops += 1
        except BackendError:
            failed += 1
    return ops, failed


def run_all(scenarios: Sequence[Scenario], contenders: Sequence[str]) -> list[Run]:
    return [run(scenario, name) for scenario in scenarios for name in contenders]
