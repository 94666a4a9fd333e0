"""One tick pipeline: the benchmark, the scale figures and the metrics demo drive the daemon's
own tick on the simulated host, and the loop's settings are the daemon config's."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import pytest

from balloond.backend.simulated import SimulatedHost, open_simulated
from balloond.bench.contenders import TicksItself, make
from balloond.bench.contenders.balloond import Balloond
from balloond.bench.fingerprint import digest_tick
from balloond.bench.runner import EPOCH, run
from balloond.bench.scale import ScaleFleet
from balloond.config import DaemonConfig
from balloond.core.state import ControllerState
from balloond.daemon.assemble import simulated_daemon
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.errors import ConnectionLost
from balloond.metrics.demo import simulated_view
from balloond.metrics.static import StaticView
from balloond.model import Decision
from balloond.policy.model import Amount
from balloond.sim.scenario import parse_scenario
from balloond.units import GiB, MiB
from tests.support.daemon import make_daemon, sim_host

SCENARIO = """\
name: pipeline
host: {memory: 8GiB, reserve: 512MiB}
duration: 60s
step: 1s
guests:
  - {name: pinned, maxmem: 4GiB, initial: 3GiB, floor: 2GiB, weight: 3000,
     demand: {anon: 300MiB, file: 100MiB}}
  - {name: idle, maxmem: 4GiB, initial: 3GiB, demand: {anon: 300MiB, file: 100MiB}}
"""


def _decision_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The daemon's line for each target it set (only `Daemon.tick` writes them): a driver
    that ran its own loop around decide() would log none."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "balloond.decisions" and not r.getMessage().startswith("routine shrinks")
    ]


def _digest(decision: Decision, state: ControllerState) -> str:
    digest = hashlib.sha256()
    digest_tick(digest, decision, state)
    return digest.hexdigest()


# -- LoopSettings ---------------------------------------------------------------------------


def test_loop_settings_are_the_daemon_config_with_the_command_line_on_top() -> None:
    config = DaemonConfig(
        interval=5.0,
        reserve=Amount(ratio=0.1),
        stale_after=40.0,
        stuck_after=60.0,
        stats_period=3.0,
    )
    settings = LoopSettings.from_config(config)
    for field in dataclasses.fields(DaemonConfig):
        assert getattr(settings, field.name) == getattr(config, field.name), field.name
    # The config's own rules, not copies of them.
    assert settings.stale_after_seconds == config.stale_after_seconds == 40.0
    assert settings.reserve_for(10 * GiB) == config.reserve_for(10 * GiB) == GiB
    given = LoopSettings.from_config(config, interval=1.0, dry_run=True)
    assert (given.interval, given.dry_run) == (1.0, True)
    assert LoopSettings.from_config(dataclasses.replace(config, dry_run=True)).dry_run
    assert LoopSettings.from_config(DaemonConfig(interval=10.0)).stale_after_seconds == 30.0


# -- the daemon's tick ------------------------------------------------------------------------


def test_the_tick_decides_with_daemon_decide_which_changes_nothing() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: host, clock=host.now)
    for _ in range(3):
        host.advance(5)
        daemon.tick()
    before = daemon.controller_state()
    host.advance(5)
    decision = daemon.tick()
    snapshot = daemon.last_snapshot()
    assert decision is not None and snapshot is not None and decision.actions
    kept = daemon.controller_state()
    again, state = daemon.decide(snapshot, daemon.holds(), before)
    assert _digest(again, state) == _digest(decision, kept)
    assert daemon.controller_state() is kept  # deciding again changed nothing


def test_the_tick_records_its_time_and_what_the_backend_took_and_refused() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: host, clock=host.now)
    host.advance(5)
    decision = daemon.tick()
    record = daemon.last_tick
    assert decision is not None and record is not None
    assert (record.applied, record.refused) == (len(decision.actions), 0)
    assert min(record.collect, record.decide, record.act) >= 0
    host.advance(5)
    for dom in host.domains():
        host.fail_next(dom.name)
    decision = daemon.tick()
    record = daemon.last_tick
    assert decision is not None and record is not None and decision.actions
    assert (record.applied, record.refused) == (0, len(decision.actions))
    assert daemon.telemetry().failures["set_target"] == record.refused
    for action in decision.actions:  # refused: not promised, as the tick forgets them
        assert daemon.controller_state().promised(action.uuid, action.current) == 0
    host.break_connection()
    assert daemon.tick() is None and daemon.last_tick is None


def test_a_dry_tick_sets_nothing_and_refuses_nothing() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: host, clock=host.now, dry_run=True)
    host.advance(5)
    decision = daemon.tick()
    assert decision is not None and decision.actions
    assert daemon.last_tick is not None
    assert (daemon.last_tick.applied, daemon.last_tick.refused) == (0, 0)


def test_the_simulated_daemon_runs_on_the_hosts_clock_and_owns_the_host() -> None:
    host = open_simulated("sim://default?clock=manual")
    daemon = simulated_daemon(host, LoopSettings(reserve=Amount(size=GiB)))
    assert daemon.clock() == host.now()
    host.advance(10)
    assert daemon.clock() == host.now()
    assert not daemon.connected  # it connects at its first tick, as `balloond run` does
    decision = daemon.tick()
    assert decision is not None and decision.taken_at == host.now() and daemon.connected
    assert daemon.reserve == GiB
    daemon.close()
    with pytest.raises(ConnectionLost):
        host.domains()


# -- what drives it -----------------------------------------------------------------------------


def test_the_benchmarks_balloond_is_the_daemon_with_the_scenarios_policies() -> None:
    scenario = parse_scenario(SCENARIO)
    host = SimulatedHost.from_scenario(scenario, clock="manual", epoch=EPOCH)
    contender = make("balloond", scenario, host)
    assert isinstance(contender, TicksItself) and isinstance(contender, Balloond)
    assert isinstance(contender.daemon, Daemon) and not contender.daemon.connected
    host.advance(2)
    applied, refused = contender.tick()
    decision = contender.last
    assert decision is not None and decision is contender.daemon.last_decision()
    by_name = {d.name: d for d in decision.domains}
    # The scenario's floor is a policy for that guest alone; the other keeps the default.
    assert by_name["pinned"].floor == 2 * GiB and by_name["idle"].floor == GiB
    assert {d.policy for d in decision.domains} == {"default"}
    assert (applied, refused) == (len(decision.actions), 0) and applied > 0
    assert contender.daemon.reserve == 512 * MiB
    host.advance(2)
    for dom in host.domains():
        host.fail_next(dom.name)
    applied, refused = contender.tick()
    assert contender.last is not None and refused == len(contender.last.actions) > 0
    assert applied == 0
    host.close()


def test_a_benchmark_run_counts_the_daemons_own_target_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="balloond.decisions")  # routine shrinks: debug
    scenario = parse_scenario(SCENARIO)
    ticks: list[tuple[int, int]] = []

    def watch(contender: object) -> None:
        assert isinstance(contender, Balloond) and contender.daemon.last_tick is not None
        ticks.append((contender.daemon.last_tick.applied, contender.daemon.last_tick.refused))

    result = run(scenario, "balloond", watch=watch)
    assert len(ticks) == 30  # every 2 s of 60 s
    assert result.errors == sum(refused for _, refused in ticks) == 0
    hours = 2 * 60 / 3600  # two guests for a minute
    assert result.figures.ops_per_guest_hour == round(sum(a for a, _ in ticks) / hours, 1) > 0
    assert len(_decision_lines(caplog)) == sum(a for a, _ in ticks)


def test_the_scale_fleet_is_ticked_by_the_daemon(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="balloond.decisions")
    fleet = ScaleFleet(20, epoch=EPOCH)
    try:
        decision = fleet.tick()
        assert decision is fleet.daemon.last_decision()
        assert fleet.daemon.last_tick is not None
        assert fleet.daemon.last_tick.applied == len(decision.actions) > 0
        assert fleet.daemon.telemetry().ticks == 1
        assert len(_decision_lines(caplog)) == len(decision.actions)
    finally:
        fleet.close()


def test_the_metrics_demo_freezes_what_the_daemon_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="balloond.decisions")
    view, host = simulated_view(ticks=2)
    telemetry = view.telemetry()
    assert telemetry.ticks == 2 and telemetry.libvirt_up
    assert view.reserve == 512 * MiB and view.uri == host.uri
    decision, snapshot = view.last_decision(), view.last_snapshot()
    assert decision is not None and snapshot is not None
    assert decision.taken_at == snapshot.taken_at == host.now()
    assert sum(telemetry.adjustments.values()) == len(_decision_lines(caplog)) > 0
    daemon = simulated_daemon(host, LoopSettings(reserve=Amount(size=GiB)))
    daemon.tick()
    frozen = StaticView.of(daemon)
    assert frozen.last_decision() is daemon.last_decision()
    assert frozen.last_snapshot() is daemon.last_snapshot()
    assert frozen.reserve == daemon.reserve and frozen.telemetry().ticks == 1
    assert dict(frozen.reports()) == dict(daemon.reports())
    daemon.close()
