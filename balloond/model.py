"""The values that flow through one tick: snapshot in, decision out.

All sizes are int bytes, all times float seconds (epoch for instants), all ratios 0..1.
Everything here is immutable; the decision core never sees a hypervisor object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class DomainState(StrEnum):
    """libvirt's domain states, in the operator's words. `xm list` letters in `LETTERS`."""

    RUNNING = "running"
    BLOCKED = "blocked"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"  # shutting down
    SHUTOFF = "shutoff"
    CRASHED = "crashed"
    PMSUSPENDED = "pmsuspended"
    UNKNOWN = "unknown"


# xm list's State column: r b p s c d (shutoff shows as '-' since xm never listed it).
LETTERS: dict[DomainState, str] = {
    DomainState.RUNNING: "r",
    DomainState.BLOCKED: "b",
    DomainState.PAUSED: "p",
    DomainState.SHUTDOWN: "s",
    DomainState.CRASHED: "c",
    DomainState.PMSUSPENDED: "p",
    DomainState.SHUTOFF: "-",
    DomainState.UNKNOWN: "-",
}


class JobKind(StrEnum):
    """A long-running hypervisor job on the domain. Any job means: leave the domain alone."""

    MIGRATION = "migration"
    SAVE = "save"
    RESTORE = "restore"
    DUMP = "dump"
    SNAPSHOT = "snapshot"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class MemoryStats:
    """The balloon driver's view of the guest (libvirt memoryStats, converted to bytes).

    Each field is None when the driver did not report it. `available` is MemAvailable
    (libvirt calls it `usable`); `total` is MemTotal (libvirt calls it `available`).
    Counters (`swap_in`, `swap_out`, `major_faults`) are cumulative since guest boot.
    """

    total: int | None = None
    available: int | None = None
    unused: int | None = None
    disk_caches: int | None = None
    swap_in: int | None = None
    swap_out: int | None = None
    major_faults: int | None = None
    last_update: float | None = None  # epoch seconds of the guest's last stats update
    # Host side, not the guest's: the hypervisor process's resident memory (QEMU's `rss`),
    # guest pages it has touched plus its own overhead. Memory inside the balloon that the
    # guest never touched is not in it, and the host still counts it as free.
    rss: int | None = None


@dataclass(frozen=True, slots=True)
class GuestReport:
    """A guest agent's report after sanitising (see balloond.reports). Still only a claim:
    the decision core clamps anything derived from it into the domain's own policy range."""

    seq: int
    received_at: float  # host clock
    agent_version: str = ""
    mem_total: int | None = None
    mem_available: int | None = None
    committed_as: int | None = None
    cached: int | None = None
    shmem: int | None = None
    swap_total: int | None = None
    swap_free: int | None = None
    demand: int | None = None  # the agent's own estimate of memory it needs (no buffer)
    requested_target: int | None = None  # the guest asks for this balloon size
    psi_some: float | None = None  # stall ratio (PSI some) over the last report interval
    psi_full: float | None = None
    psi_some_avg10: float | None = None
    swap_in_rate: float | None = None  # bytes per second
    swap_out_rate: float | None = None
    major_fault_rate: float | None = None  # faults per second


@dataclass(frozen=True, slots=True)
class DomainSnapshot:
    """One domain as the backend saw it at the start of a tick."""

    name: str
    uuid: str
    current: int  # balloon size now
    maxmem: int  # hard ceiling set in the hypervisor
    state: DomainState = DomainState.RUNNING
    id: int | None = None
    job: JobKind | None = None
    vcpus: int = 1
    cpu_time: float = 0.0  # seconds of CPU used
    stats: MemoryStats | None = None
    report: GuestReport | None = None
    tags: frozenset[str] = frozenset()  # from libvirt metadata; used by policy `match: tags`
    persistent_maxmem: int | None = None  # the config's maxmem when it differs from the live one
    channel: str | None = None  # host path of the guest agent's unix socket, if the domain has one
    hypervisor: str = ""  # "qemu", "xen", "test", "sim": what the backend's driver is


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """`free` is what the host could still hand to guests now (for QEMU hosts the node's
    MemFree + Buffers + Cached; for Xen the hypervisor's free pages)."""

    total: int
    free: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: float
    host: HostSnapshot
    domains: tuple[DomainSnapshot, ...]


@dataclass(frozen=True, slots=True)
class Hold:
    """The daemon leaves `domain` (a UUID) alone until `until` (None: until released).
    With a `target`, the hold pins that size (an explicit `balloonctl balloon`)."""

    domain: str
    owner: str  # "balloonctl balloon", "balloonctl migrate", ...
    reason: str
    until: float | None = None
    target: int | None = None
    pid: int | None = None  # a command's pid: the hold dies with the command

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until


class Reason(StrEnum):
    """Why a domain's target is what it is. Values are metric labels."""

    GROW_PRESSURE = "grow_pressure"
    GROW_DEMAND = "grow_demand"
    SHRINK_IDLE = "shrink_idle"
    CONTENTION = "contention"
    GUEST_REQUEST = "guest_request"
    FLOOR = "floor"
    CEILING = "ceiling"
    SWAP_GUARD = "swap_guard"
    STEADY = "steady"
    HOLD = "hold"
    STUCK = "stuck"
    NO_DATA = "no_data"
    BUSY = "busy"
    DISABLED = "disabled"


class Explanation(NamedTuple):
    """Why a target is what it is, written when read: `write(*facts)`.

    A tick decides every domain but only the few that move are logged, and an operator asks
    about one domain at a time: the core hands out the facts a sentence is written from
    instead of a thousand sentences nobody reads. The facts are immutable values (sizes,
    the estimate, the policy), so the text is the same whenever and from whichever thread it
    is read; nothing is stored when it is read."""

    write: Callable[..., str]
    facts: tuple[Any, ...]

    def text(self) -> str:
        return self.write(*self.facts)

    def __repr__(self) -> str:
        return repr(self.text())


class DomainDecision(NamedTuple):
    """What the core decided for one domain, and why, in words an operator reads
    (`explanation`; `why` is that text or the `Explanation` it is written from)."""

    name: str
    uuid: str
    policy: str
    reason: Reason
    current: int
    target: int
    floor: int
    ceiling: int
    why: str | Explanation
    demand: int | None = None
    pressure: float | None = None
    act: bool = False  # True: the daemon should set `target` now
    fair_share: int | None = None  # what weight promises it this tick (claimants only)

    @property
    def explanation(self) -> str:
        why = self.why
        return why if isinstance(why, str) else why.text()

    @property
    def delta(self) -> int:
        return self.target - self.current


@dataclass(frozen=True, slots=True)
class Decision:
    """The whole tick's decision. `domains` lists every domain; `actions` is the subset to
    apply, shrinks first so that memory is freed before it is promised elsewhere."""

    taken_at: float
    domains: tuple[DomainDecision, ...]
    host_free: int
    reserve: int
    budget: int  # what could still be granted after this decision (>= 0)
    notes: tuple[str, ...] = field(default=())

    @property
    def actions(self) -> tuple[DomainDecision, ...]:
        acting = [d for d in self.domains if d.act]
        return tuple(sorted(acting, key=lambda d: (d.delta > 0, d.delta)))
