"""balloond itself: the real decision core (`balloond.core.decide.decide`) with the shipped
default policy (policies/default.yaml; the built-in default when the file is missing), at
the daemon's default interval, fed what the daemon would be fed: balloon statistics plus the
guest agent's reports where a guest runs the agent. A scenario's floor and weight become
per-guest policy overrides, as an operator would write them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from balloond.bench.contenders.base import Observation
from balloond.config import DEFAULT_INTERVAL, default_stale_after
from balloond.core.decide import decide
from balloond.core.state import ControllerState
from balloond.model import Decision, DomainSnapshot
from balloond.policy.model import DEFAULT_POLICY, Amount, Policy, PolicySet
from balloond.sim.scenario import Scenario

# The daemon's own defaults, so the table measures what an operator gets out of the box.
INTERVAL = DEFAULT_INTERVAL
STALE_AFTER = default_stale_after(INTERVAL)
DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[3] / "policies" / "default.yaml"


def shipped_policies(path: Path = DEFAULT_POLICY_FILE) -> PolicySet:
    if not path.is_file():
        return PolicySet(default=DEFAULT_POLICY)
    from balloond.policy.loader import load_policy_files

    return load_policy_files([str(path)])


class Balloond:
    name = "balloond"
    interval = INTERVAL
    uses_reports = True

    def __init__(self, scenario: Scenario, policies: PolicySet | None = None) -> None:
        policies = policies or shipped_policies()
        self.default = policies.default
        self.policies = {
            spec.name: self._override(policies.default, spec.floor, spec.weight)
            for spec in scenario.guests
        }
        self.state = ControllerState.empty()
        self.last: Decision | None = None

    @staticmethod
    def _override(base: Policy, floor: int | None, weight: int | None) -> Policy:
        changes: dict[str, object] = {}
        if floor is not None:
            changes["floor"] = Amount(size=floor)
        if weight is not None:
            changes["weight"] = weight
        return dataclasses.replace(base, **changes) if changes else base  # type: ignore[arg-type]

    def _policy_for(self, dom: DomainSnapshot) -> Policy:
        return self.policies.get(dom.name, self.default)

    def decide(self, obs: Observation) -> Mapping[str, int]:
        decision, self.state = decide(
            obs.snapshot,
            self._policy_for,
            self.state,
            reserve=obs.reserve,
            holds={},
            now=obs.now,
            stale_after=STALE_AFTER,
        )
        self.last = decision
        return {d.name: d.target for d in decision.actions}

    def rejected(self, uuid: str) -> None:
        """The host refused a target: forget it, as the daemon does."""
        self.state = self.state.forget_target(uuid)
