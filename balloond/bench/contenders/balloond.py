"""balloond itself: the daemon's own tick (`balloond.daemon.loop.Daemon`) on the run's
simulated host, with the shipped default policy (policies/default.yaml; the built-in default
when the file is missing) at the daemon's default interval and the scenario's host reserve.
It collects what the daemon collects (balloon statistics, and the guest agent's reports
where a guest runs the agent), decides, and sets targets through the backend, shrinks first;
a target the host refuses is forgotten, as the daemon forgets it. A scenario's floor and
weight for a guest become a policy for that guest, as an operator would write them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from balloond.config import DEFAULT_INTERVAL
from balloond.core.state import ControllerState
from balloond.daemon.assemble import simulated_daemon
from balloond.daemon.loop import LoopSettings
from balloond.model import Decision
from balloond.policy.model import DEFAULT_POLICY, Amount, Match, PolicySet
from balloond.sim.scenario import Scenario

if TYPE_CHECKING:
    from balloond.backend.simulated import SimulatedHost

# The daemon's own defaults, so the table measures what an operator gets out of the box.
INTERVAL = DEFAULT_INTERVAL
DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[3] / "policies" / "default.yaml"


def shipped_policies(path: Path = DEFAULT_POLICY_FILE) -> PolicySet:
    if not path.is_file():
        return PolicySet(default=DEFAULT_POLICY)
    from balloond.policy.loader import load_policy_files

    return load_policy_files([str(path)])


def settings_for(scenario: Scenario) -> LoopSettings:
    """The daemon's default settings, with the scenario host's reserve."""
    return LoopSettings(interval=INTERVAL, reserve=Amount(size=scenario.host.reserve))


def with_guest_policies(policies: PolicySet, scenario: Scenario) -> PolicySet:
    """`policies` plus, for each guest whose scenario sets a floor or a weight, a policy for
    that guest alone (its exact name): the default policy with the floor and weight changed.
    It keeps the default's name, so decisions name the policy the operator started from."""
    own = []
    for spec in scenario.guests:
        changes: dict[str, object] = {}
        if spec.floor is not None:
            changes["floor"] = Amount(size=spec.floor)
        if spec.weight is not None:
            changes["weight"] = spec.weight
        if changes:
            match = Match(names=(spec.name,))
            own.append(dataclasses.replace(policies.default, match=match, **changes))  # type: ignore[arg-type]
    return dataclasses.replace(policies, policies=(*own, *policies.policies))


class Balloond:
    name = "balloond"
    interval = INTERVAL

    def __init__(
        self, scenario: Scenario, host: SimulatedHost, policies: PolicySet | None = None
    ) -> None:
        chosen = with_guest_policies(policies or shipped_policies(), scenario)
        self.daemon = simulated_daemon(host, settings_for(scenario), chosen)

    def tick(self) -> tuple[int, int]:
        """The daemon's tick, now on the host's clock: (targets set, targets refused)."""
        self.daemon.tick()
        record = self.daemon.last_tick
        return (record.applied, record.refused) if record is not None else (0, 0)

    @property
    def last(self) -> Decision | None:
        """The decision of the daemon's last tick."""
        return self.daemon.last_decision()

    @property
    def state(self) -> ControllerState:
        """What the daemon carries to its next tick."""
        return self.daemon.controller_state()
