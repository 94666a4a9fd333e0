"""Real backends with a little of the world's misbehaviour added (no mocks): a recorder of
set_target calls, a host on which a domain vanishes between list and act, and a connection
to a simulated host that can drop and come back."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from balloond.backend.simulated import SimulatedHost, open_simulated
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.daemon.reload import PolicyWatcher
from balloond.daemon.statefile import StateFile
from balloond.errors import ConnectionLost
from balloond.model import DomainSnapshot, Hold
from balloond.policy.model import Amount
from balloond.telemetry import Telemetry
from balloond.units import GiB

HOST_XML = Path(__file__).with_name("daemon-host.xml")


def sim_host() -> SimulatedHost:
    return open_simulated("sim://default?clock=manual")


class Recording:
    """Delegates to a real backend and records every set_target that reached it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int]] = []

    @property
    def uri(self) -> str:
        return str(self.inner.uri)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def set_target(self, name: str, target: int) -> None:
        self.inner.set_target(name, target)
        self.calls.append((name, target))

    def close(self) -> None:
        """A connection closes; the simulated host behind it lives on."""


class Vanishing(Recording):
    """After listing the domains, `victim` is destroyed behind the daemon's back."""

    def __init__(self, inner: Any, victim: str) -> None:
        super().__init__(inner)
        self.victim = victim

    def domains(self) -> list[DomainSnapshot]:
        listed: list[DomainSnapshot] = self.inner.domains()
        if any(d.name == self.victim for d in listed):
            self.inner.vanish(self.victim)
        return listed


class FlakyLink:
    """Opens connections to a simulated host; `up = False` drops the current one and makes
    new ones fail, as a libvirtd restart would."""

    def __init__(self, host: SimulatedHost) -> None:
        self.host = host
        self.up = True
        self.opened = 0
        self.backends: list[Recording] = []

    def connect(self) -> Recording:
        if not self.up:
            raise ConnectionLost("libvirtd is down (test)")
        self.opened += 1
        self.host.break_connection(False)
        backend = Recording(self.host)
        self.backends.append(backend)
        return backend

    def drop(self) -> None:
        self.up = False
        self.host.break_connection(True)

    def restore(self) -> None:
        self.up = True

    def calls(self) -> list[tuple[str, int]]:
        return [call for backend in self.backends for call in backend.calls]


def make_daemon(
    connect: Any,
    *,
    clock: Any,
    policy_dir: Path | None = None,
    state_dir: Path | None = None,
    dry_run: bool = False,
    interval: float = 5.0,
) -> Daemon:
    telemetry = Telemetry()
    policies = PolicyWatcher(policy_dir, telemetry)
    policies.load_initial()
    return Daemon(
        connect,
        LoopSettings(interval=interval, reserve=Amount(size=GiB), dry_run=dry_run),
        policies,
        uri="test",
        clock=clock,
        telemetry=telemetry,
        state_file=StateFile(state_dir) if state_dir is not None else None,
    )


def floors(daemon: Daemon) -> Mapping[str, int]:
    """Each domain's policy floor, from the policies themselves (not from the decision)."""
    from balloond.policy.match import select

    snapshot = daemon.last_snapshot()
    assert snapshot is not None
    return {
        d.name: select(daemon.policies.current, d).floor_for(d.maxmem) for d in snapshot.domains
    }


def run_ticks(daemon: Daemon, host: SimulatedHost, ticks: int, step: float = 5.0) -> None:
    for _ in range(ticks):
        host.advance(step)
        daemon.tick()


def hold(domain: str, until: float | None = None, target: int | None = None) -> Hold:
    return Hold(domain=domain, owner="test", reason="testing", until=until, target=target)
