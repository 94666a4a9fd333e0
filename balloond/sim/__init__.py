"""The simulated host: scenario files, the guest model and the host model.

`scenario` loads the YAML scenario format (docs/simulator.md), `guest` steps one guest's
memory through time, `host` steps a whole host, `fleet` generates large synthetic hosts.
`balloond.backend.simulated` wraps a host behind the backend contract.
"""

from __future__ import annotations

from balloond.sim.guest import GuestTruth, SimGuest
from balloond.sim.host import SimHost
from balloond.sim.scenario import (
    GuestSpec,
    HostSpec,
    Scenario,
    Trace,
    load_scenario,
    parse_scenario,
)

__all__ = [
    "GuestSpec",
    "GuestTruth",
    "HostSpec",
    "Scenario",
    "SimGuest",
    "SimHost",
    "Trace",
    "load_scenario",
    "parse_scenario",
]
