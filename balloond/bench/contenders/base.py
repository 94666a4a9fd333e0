"""What every contender is given, and the little it must implement.

A contender sees the host only through `Observation`: the snapshot a real deployment would
collect (libvirt statistics for everyone; guest-agent reports only for contenders that run
an in-guest component), plus the operator's configuration (`GuestConfig`). The oracle alone
is also handed the scenario's future. balloond is not a decision function but the daemon
itself (`TicksItself`): it reads the host, decides and sets targets through the backend, as
it does in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from balloond.model import DomainSnapshot, Snapshot
from balloond.sim.scenario import Scenario

# The operator's minimum when a scenario gives no floor: balloond's default floor (25% of
# maxmem), configured the same way for every contender that has a minimum knob.
DEFAULT_FLOOR_RATIO = 0.25
DEFAULT_WEIGHT = 1000


@dataclass(frozen=True, slots=True)
class GuestConfig:
    """What the operator configured for one guest (the same for every contender)."""

    floor: int
    weight: int
    floor_given: bool  # the scenario set it (else DEFAULT_FLOOR_RATIO of maxmem)


@dataclass(frozen=True, slots=True)
class Observation:
    now: float  # epoch seconds
    t: float  # seconds into the scenario
    snapshot: Snapshot  # reports attached only when the contender `uses_reports`
    reserve: int  # the host reserve every contender is asked to keep free


class Contender(Protocol):
    name: str
    interval: float  # seconds between decisions
    uses_reports: bool  # True: an in-guest component feeds it (agent / meminfo writer)

    def decide(self, obs: Observation) -> Mapping[str, int]:
        """New balloon targets by domain name (bytes); domains not named are left alone."""
        ...


@runtime_checkable
class TicksItself(Protocol):
    """A contender that is a whole controller on the run's host: each tick it reads the host,
    decides and sets targets itself, through the backend (balloond: the daemon's own tick).
    The runner neither observes nor applies targets for it."""

    name: str
    interval: float  # seconds between ticks

    def tick(self) -> tuple[int, int]:
        """One tick now: (targets set, targets the backend refused)."""
        ...


def guest_configs(scenario: Scenario) -> dict[str, GuestConfig]:
    configs = {}
    for spec in scenario.guests:
        floor = spec.floor if spec.floor is not None else int(spec.maxmem * DEFAULT_FLOOR_RATIO)
        configs[spec.name] = GuestConfig(
            floor=floor, weight=spec.weight or DEFAULT_WEIGHT, floor_given=spec.floor is not None
        )
    return configs


def running(obs: Observation) -> list[DomainSnapshot]:
    return [d for d in obs.snapshot.domains if d.state == "running" and d.job is None]
