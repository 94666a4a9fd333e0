"""The simulated host behind the backend contract: the embedded default (`sim://default`), the
backend of the tests and of the benchmark.

URIs:
    sim://default                  the embedded demo scenario (balloond/data/demo.yaml)
    sim:///abs/path/scenario.yaml  a scenario file
    sim://NAME?guests=1000         a generated fleet of that size (scale runs)
Query options: `clock=wall|manual` (default wall), `speed=10` (wall clock only: simulated
seconds per real second), `reserve=1GiB` is not an option: the reserve belongs to the daemon.

Clock: with `manual`, time moves only by `advance(seconds)` (tests, benchmark). With `wall`,
the host catches up lazily, in whole steps, whenever it is queried. Epoch instants are
`epoch + t` (manual) or the wall clock (wall).

The host implements Backend, Operations (save/restore to a JSON file; migrate to another
SimulatedHost open in this process, under its URI), ReportSource (agent reports by UUID),
HoldStore and HoldLookup (in memory) and DomainLookup (its domains are all active: a saved
or migrated guest leaves it). A few extra methods let tests inject faults (`break_connection`,
`fail_next`, `vanish`, `pause`, `set_job`, `override_stats`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import resources
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from balloond.backend.base import DomainEvent, EventKind, JobProgress, MigrationResult
from balloond.errors import (
    ConfigError,
    ConnectionLost,
    DomainNotFound,
    OperationFailed,
)
from balloond.model import (
    DomainSnapshot,
    DomainState,
    GuestReport,
    Hold,
    HostSnapshot,
    JobKind,
    MemoryStats,
)
from balloond.pids import pid_alive
from balloond.sim import ops
from balloond.sim.fleet import generate_fleet
from balloond.sim.guest import SimGuest
from balloond.sim.host import SimHost
from balloond.sim.scenario import Scenario, load_scenario, parse_scenario
from balloond.units import MiB, format_size

Clock = Literal["manual", "wall"]
MAX_CATCH_UP_STEPS = 100_000  # a wall-clock host asleep for longer skips ahead instead
MIN_TARGET = 64 * MiB  # no guest boots or runs below this; smaller targets are refused

_REGISTRY: dict[str, SimulatedHost] = {}  # open simulated hosts by URI (migration targets)
_REGISTRY_LOCK = threading.Lock()


def demo_scenario() -> Scenario:
    """The embedded default scenario."""
    text = resources.files("balloond").joinpath("data/demo.yaml").read_text(encoding="utf-8")
    return parse_scenario(text, source="balloond/data/demo.yaml")


def open_simulated(uri: str) -> SimulatedHost:
    """Open a simulated host from a `sim://` URI (see the module docstring)."""
    parts = urlsplit(uri)
    if parts.scheme != "sim":
        raise ConfigError(f"not a simulated host URI: {uri!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"clock", "speed", "guests", "seed"}
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(sorted(unknown))} in {uri!r} "
            "(allowed: clock, speed, guests, seed)"
        )
    scenario = _scenario_for(parts.netloc, parts.path, query, uri)
    clock = query.get("clock", "wall")
    if clock not in ("wall", "manual"):
        raise ConfigError(f"clock must be 'wall' or 'manual', got: {clock!r} in {uri!r}")
    try:
        speed = float(query.get("speed", "1"))
    except ValueError:
        raise ConfigError(f"speed must be a number, got: {query['speed']!r} in {uri!r}") from None
    if not 0 < speed <= 10_000:
        raise ConfigError(f"speed must be between 0 and 10000, got: {speed:g} in {uri!r}")
    base = f"sim://{parts.netloc}{parts.path}"
    return SimulatedHost(
        scenario, uri=base, clock="wall" if clock == "wall" else "manual", speed=speed
    )


def _scenario_for(netloc: str, path: str, query: dict[str, str], uri: str) -> Scenario:
    if "guests" in query:
        try:
            return generate_fleet(
                netloc or "fleet",
                int(query["guests"]),
                seed=int(query["seed"]) if "seed" in query else None,
            )
        except ValueError as exc:
            raise ConfigError(f"{exc} in {uri!r}") from None
    if path and path != "/":
        return load_scenario(path)
    if netloc in ("", "default"):
        return demo_scenario()
    raise ConfigError(
        f"unknown simulated host {netloc!r} in {uri!r}: use sim://default, "
        "sim:///path/to/scenario.yaml or sim://NAME?guests=N"
    )


class SimulatedHost:
    """A simulated hypervisor host. Thread-safe: one lock guards the whole model."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        uri: str | None = None,
        clock: Clock = "manual",
        speed: float = 1.0,
        epoch: float | None = None,
    ) -> None:
        self.scenario = scenario
        self.sim = SimHost(scenario)
        self.sim.on_event = self._on_sim_event
        self._uri = uri or f"sim://{scenario.name}"
        self._clock = clock
        self._speed = speed
        self._epoch = time.time() if epoch is None else epoch
        self._mono0 = time.monotonic()
        self._lock = threading.RLock()
        self._watchers: list[Callable[[DomainEvent], None]] = []
        self._holds: dict[str, Hold] = {}
        self._broken = False
        self._failures: dict[tuple[str, str], int] = {}
        self._stats_override: dict[str, MemoryStats | None] = {}
        self._closed = False
        with _REGISTRY_LOCK:
            _REGISTRY[self._uri] = self

    @classmethod
    def from_scenario(
        cls,
        scenario: Scenario,
        clock: Clock = "manual",
        *,
        uri: str | None = None,
        speed: float = 1.0,
        epoch: float | None = None,
    ) -> SimulatedHost:
        return cls(scenario, uri=uri, clock=clock, speed=speed, epoch=epoch)

    # -- clock ------------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self._uri

    def now(self) -> float:
        """The host's epoch clock."""
        if self._clock == "wall":
            return time.time()
        return self._epoch + self.sim.t

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (manual clock; with a wall clock it adds to it)."""
        with self._lock:
            if self._clock == "manual":
                self.sim.advance(seconds, self._epoch + self.sim.t + seconds)
            else:
                self._mono0 -= seconds / self._speed

    def _sync(self) -> None:
        if self._closed:
            raise ConnectionLost(f"simulated host {self._uri} is closed")
        if self._broken:
            raise ConnectionLost(f"simulated host {self._uri}: connection lost (injected)")
        if self._clock != "wall":
            return
        due = (time.monotonic() - self._mono0) * self._speed - self.sim.t
        steps = int(due / self.scenario.step)
        if steps > MAX_CATCH_UP_STEPS:
            self.sim.t += (steps - MAX_CATCH_UP_STEPS) * self.scenario.step
            steps = MAX_CATCH_UP_STEPS
        now = time.time()
        for _ in range(steps):
            self.sim.step(now)

    # -- Backend ----------------------------------------------------------------------------

    def host(self) -> HostSnapshot:
        with self._lock:
            self._sync()
            return HostSnapshot(total=self.sim.memory, free=max(0, self.sim.free))

    def domains(self) -> list[DomainSnapshot]:
        with self._lock:
            self._sync()
            return [self._snapshot(g) for g in self.sim.active()]

    def domain(self, name: str) -> DomainSnapshot:
        with self._lock:
            self._sync()
            return self._snapshot(self._guest(name))

    def _snapshot(self, guest: SimGuest) -> DomainSnapshot:
        name = guest.spec.name
        # A guest that has not run a step yet has not reported (as after a real boot).
        stats = guest.stats() if guest.seq else None
        stats = self._stats_override.get(name, stats)
        return DomainSnapshot(
            name=name,
            uuid=guest.uuid,
            current=guest.current,
            maxmem=guest.maxmem,
            state=guest.state,
            id=guest.id,
            job=guest.job,
            vcpus=2,
            cpu_time=guest.seq * 0.05,
            stats=stats,
            tags=guest.tags,
            hypervisor="sim",
        )

    def set_target(self, name: str, target: int) -> None:
        with self._lock:
            self._sync()
            guest = self._guest(name)
            self._maybe_fail(name, "set_target")
            if target < MIN_TARGET or target > guest.maxmem:
                raise OperationFailed(
                    f"domain '{name}': target {format_size(target)} is outside "
                    f"{format_size(MIN_TARGET)}..{format_size(guest.maxmem)} (maxmem)"
                )
            guest.set_target(target)

    def set_maxmem(self, name: str, size: int, *, live: bool) -> bool:
        with self._lock:
            self._sync()
            guest = self._guest(name)
            self._maybe_fail(name, "set_maxmem")
            if size < MIN_TARGET:
                raise OperationFailed(
                    f"domain '{name}': maxmem {format_size(size)} is below "
                    f"{format_size(MIN_TARGET)}"
                )
            guest.set_maxmem(size)  # Xen-like: maxmem changes live as well as in the config
            return live

    def watch(self, callback: Callable[[DomainEvent], None]) -> None:
        with self._lock:
            self._watchers.append(callback)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._watchers.clear()
        with _REGISTRY_LOCK:
            if _REGISTRY.get(self._uri) is self:
                del _REGISTRY[self._uri]

    def _guest(self, name: str) -> SimGuest:
        guest = self.sim.guests.get(name)
        if guest is None:
            raise DomainNotFound(f"domain '{name}' not found on {self._uri}")
        return guest

    def _on_sim_event(self, kind: EventKind, guest: SimGuest, at: float) -> None:
        self.emit(kind, guest.spec.name, guest.uuid)

    def emit(self, kind: EventKind, name: str, uuid: str) -> None:
        event = DomainEvent(kind=kind, name=name, uuid=uuid, at=self.now())
        for callback in list(self._watchers):
            callback(event)

    # -- ReportSource, HoldStore ---------------------------------------------------------------

    def reports(self) -> Mapping[str, GuestReport]:
        with self._lock:
            self._sync()
            found = (
                (g.uuid, g.report()) for g in self.sim.active() if g.state == DomainState.RUNNING
            )
            return {uuid: report for uuid, report in found if report is not None}

    def holds(self) -> dict[str, Hold]:
        """As the libvirt store does: a hold whose command (on this host: the simulator has no
        other) has died is returned as expired."""
        with self._lock:
            active = {g.uuid for g in self.sim.active()}
            return {uuid: _judged(hold) for uuid, hold in self._holds.items() if uuid in active}

    def get_hold(self, name: str) -> Hold | None:
        with self._lock:
            self._sync()
            hold = self._holds.get(self._guest(name).uuid)
            return _judged(hold) if hold is not None else None

    def put_hold(self, name: str, hold: Hold) -> None:
        with self._lock:
            self._sync()
            self._holds[self._guest(name).uuid] = hold

    def clear_hold(self, name: str) -> None:
        with self._lock:
            self._sync()
            self._holds.pop(self._guest(name).uuid, None)

    # -- Operations ---------------------------------------------------------------------------

    def save(self, name: str, path: str) -> None:
        with self._lock:
            self._sync()
            guest = self._guest(name)
            ops.write_image(path, guest, self._uri)
            self.sim.remove(name)
            self.emit(EventKind.SAVED, name, guest.uuid)

    def saved_image_memory(self, path: str) -> tuple[str, int]:
        image = ops.read_image(path)
        return image.name, image.memory

    def restore(self, path: str) -> str:
        with self._lock:
            self._sync()
            image = ops.read_image(path)
            guest = ops.guest_for_image(image, path, self.scenario)
            if image.name in self.sim.guests:
                raise OperationFailed(f"domain '{image.name}' is already running on {self._uri}")
            self._need_room(image.name, guest.current)
            self.sim.adopt(guest)
            ops.forget_image(path)
            self.emit(EventKind.RESTORED, image.name, guest.uuid)
            return image.name

    def _need_room(self, name: str, size: int) -> None:
        free = self.sim.free
        if free < size:
            raise OperationFailed(
                f"domain '{name}': needs {format_size(size)} but "
                f"{self._uri} has only {format_size(max(0, free))} free"
            )

    def migrate(
        self,
        name: str,
        dest_uri: str,
        *,
        live: bool,
        max_downtime: float | None = None,
        progress: Callable[[JobProgress], None] | None = None,
    ) -> MigrationResult:
        with _REGISTRY_LOCK:
            dest = _REGISTRY.get(dest_uri.split("?", 1)[0])
        if dest is None:
            raise ConnectionLost(f"no simulated host open at {dest_uri!r}")
        if dest is self:
            raise OperationFailed(f"domain '{name}': source and destination are both {dest_uri}")
        with self._lock:
            self._sync()
            guest = self._guest(name)
            with dest._lock:
                dest._sync()
                if name in dest.sim.guests:
                    raise OperationFailed(f"domain '{name}' already exists on {dest_uri}")
                dest._need_room(name, guest.current)
                result = ops.simulate_transfer(guest.current, live, max_downtime, progress)
                self.sim.remove(name)
                dest.sim.adopt(guest)
            self._holds.pop(guest.uuid, None)
            self.emit(EventKind.MIGRATED, name, guest.uuid)
        dest.emit(EventKind.STARTED, name, guest.uuid)
        return result

    # -- fault injection and lifecycle for tests ----------------------------------------------

    def break_connection(self, broken: bool = True) -> None:
        """Every call raises ConnectionLost until `break_connection(False)`."""
        with self._lock:
            self._broken = broken
        if broken:
            self.emit(EventKind.CONNECTION_LOST, "", "")

    def fail_next(self, name: str, operation: str = "set_target", count: int = 1) -> None:
        """The next `count` calls of `operation` on `name` raise OperationFailed."""
        with self._lock:
            self._failures[(name, operation)] = count

    def _maybe_fail(self, name: str, operation: str) -> None:
        left = self._failures.get((name, operation), 0)
        if left > 0:
            self._failures[(name, operation)] = left - 1
            raise OperationFailed(f"domain '{name}': {operation} failed (injected)")

    def vanish(self, name: str) -> None:
        """The domain disappears without warning (destroyed behind our back)."""
        with self._lock:
            self.sim.remove(name)

    def pause(self, name: str, paused: bool = True) -> None:
        with self._lock:
            guest = self._guest(name)
            guest.state = DomainState.PAUSED if paused else DomainState.RUNNING
            kind = EventKind.SUSPENDED if paused else EventKind.RESUMED
            self.emit(kind, name, guest.uuid)

    def set_job(self, name: str, job: JobKind | None) -> None:
        with self._lock:
            self._guest(name).job = job

    def override_stats(self, name: str, stats: MemoryStats | None) -> None:
        """Report these statistics for `name` instead of the model's (garbage-input tests)."""
        with self._lock:
            self._stats_override[name] = stats


def _judged(hold: Hold) -> Hold:
    """A hold whose command has died (on this host: the simulator has no other) is expired."""
    return replace(hold, until=0.0) if hold.pid is not None and not pid_alive(hold.pid) else hold
