"""The contenders, one small module each; `make(name, scenario, host)` builds one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from balloond.bench.contenders.base import Contender, GuestConfig, Observation, TicksItself
from balloond.errors import ConfigError
from balloond.sim.scenario import Scenario

if TYPE_CHECKING:
    from balloond.backend.simulated import SimulatedHost

BASELINES = (
    "static",
    "mom",
    "squeezed",
    "qmemman",
    "proxmox",
    "selfballoon",
    "senpai",
    "esx",
    "hyperv",
)
NAMES = (*BASELINES, "oracle", "balloond")

__all__ = ["BASELINES", "NAMES", "Contender", "GuestConfig", "Observation", "TicksItself", "make"]


def make(name: str, scenario: Scenario, host: SimulatedHost) -> Contender | TicksItself:
    """A fresh contender for one run on `host`. Only the oracle is handed the simulation
    itself; balloond runs on the host as on any other backend."""
    if name == "static":
        from balloond.bench.contenders.static import Static

        return Static(scenario)
    if name == "mom":
        from balloond.bench.contenders.mom import Mom

        return Mom(scenario)
    if name == "squeezed":
        from balloond.bench.contenders.squeezed import Squeezed

        return Squeezed(scenario)
    if name == "qmemman":
        from balloond.bench.contenders.qmemman import Qmemman

        return Qmemman(scenario)
    if name == "proxmox":
        from balloond.bench.contenders.proxmox import Proxmox

        return Proxmox(scenario)
    if name == "selfballoon":
        from balloond.bench.contenders.selfballoon import Selfballoon

        return Selfballoon(scenario)
    if name == "senpai":
        from balloond.bench.contenders.senpai import Senpai

        return Senpai(scenario)
    if name == "esx":
        from balloond.bench.contenders.esx import Esx

        return Esx(scenario)
    if name == "hyperv":
        from balloond.bench.contenders.hyperv import HyperV

        return HyperV(scenario)
    if name == "oracle":
        from balloond.bench.contenders.oracle import Oracle

        return Oracle(scenario, host.sim)
    if name == "balloond":
        from balloond.bench.contenders.balloond import Balloond

        return Balloond(scenario, host)
    raise ConfigError(f"unknown contender {name!r}; known: {', '.join(NAMES)}")
