"""The control loop: one `tick` is one step, collect → decide → act → export.

The clock is passed in, so tests call `tick()` directly with a manual clock; the scheduler
(`balloond.daemon.scheduler`) is the only thing that calls it on a timer. Side effects live
here and at the backend; the decision itself (`balloond.core.decide`) is pure.

Failure rules, in the order a tick meets them:
- collect fails (connection lost or any backend error): nothing is moved on stale data; the
  backend is closed and reopened with exponential backoff (capped), the daemon keeps running
  (a domain that vanished mid-read only skips the tick: the connection is fine);
- one domain's `set_target` fails or the domain vanished: logged, counted, and the tick goes
  on for the others;
- the decision law never targets below a floor, so neither a reconnect nor a restart can
  squeeze a domain under it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from balloond.backend.base import (
    Backend,
    DomainEvent,
    EventKind,
    HoldStore,
    ReportSource,
    StatsPeriod,
)
from balloond.config import DaemonConfig
from balloond.core.decide import decide
from balloond.core.state import ControllerState
from balloond.daemon.decision_log import SUMMARY_EVERY, DecisionLog
from balloond.daemon.early import EARLY_TICK_GAP, Debounce, under_pressure
from balloond.daemon.holds import HoldBook, within_maxmem
from balloond.daemon.reload import PolicyWatcher
from balloond.daemon.reporting import ReportCollector, describe_action, policy_rules
from balloond.daemon.statefile import PersistedState, StateFile
from balloond.errors import BackendError, ConnectionLost, DomainNotFound, NotSupported
from balloond.model import (
    Decision,
    DomainDecision,
    DomainSnapshot,
    GuestReport,
    Hold,
    Snapshot,
)
from balloond.policy.match import matcher_for
from balloond.telemetry import Telemetry
from balloond.units import format_size

log = logging.getLogger("balloond.daemon")
decisions_log = logging.getLogger("balloond.decisions")

Clock = Callable[[], float]
Connect = Callable[[], Backend]
T = TypeVar("T")

# Events after which a domain should be looked at now rather than at the next interval. A job
# that began is one of them: a tick reads the job and leaves the domain alone from then on,
# before a migration's switchover, when libvirt blocks every call on the domain (and a tick
# with it) for seconds (measured in the lab: 1.2-2.4 s, from the pause to the end).
_WAKE_EVENTS = frozenset(
    {
        EventKind.STARTED,
        EventKind.RESTORED,
        EventKind.RESUMED,
        EventKind.CONNECTION_LOST,
        EventKind.JOB_STARTED,
        EventKind.JOB_COMPLETED,
    }
)
# Events after which the domain is gone from this host: forget it at once.
_GONE_EVENTS = frozenset(
    {EventKind.STOPPED, EventKind.SAVED, EventKind.MIGRATED, EventKind.UNDEFINED, EventKind.CRASHED}
)


@dataclass(frozen=True, slots=True)
class LoopSettings(DaemonConfig):
    """The daemon config as the loop runs it: every `DaemonConfig` setting, read through the
    config's own rules (`stale_after_seconds`, `reserve_for`), plus the loop's own knobs,
    which operators do not set (the reconnect pace, how often routine shrinks are summed up
    in the log). A tick reads interval, reserve, stale_after, stuck_after, stats_period and
    dry_run; the URI it connects to is the one the daemon is given (`--connect` wins over
    the config's). Policies are separate and reloadable."""

    reconnect_initial: float = 1.0  # first retry delay after a lost connection
    reconnect_cap: float = 60.0  # retry delay never grows past this
    routine_summary: float = SUMMARY_EVERY  # seconds; 0: log every routine shrink at info

    @classmethod
    def from_config(
        cls, config: DaemonConfig, *, interval: float | None = None, dry_run: bool = False
    ) -> LoopSettings:
        """`config` as the loop runs it; `interval` (--interval) and `dry_run` (--dry-run)
        from the command line win over the file's."""
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(DaemonConfig)}
        if interval is not None:
            values["interval"] = interval
        values["dry_run"] = dry_run or config.dry_run
        return cls(**values)


@dataclass(frozen=True, slots=True)
class TickRecord:
    """What the last tick that decided did, and where its time went (seconds): for the
    benchmark and the scale figures, which drive this tick and report on it."""

    collect: float  # host, domains, reports and holds read
    decide: float  # the law
    act: float  # targets set, limits sent to agents, state written
    applied: int  # targets the backend took
    refused: int  # targets it did not (a dry run refuses none: it sets none)


class Daemon:
    """The running balancer. Implements `balloond.view.DaemonView` for observers."""

    def __init__(
        self,
        connect: Connect,
        settings: LoopSettings,
        policies: PolicyWatcher,
        *,
        uri: str,
        clock: Clock = time.time,
        telemetry: Telemetry | None = None,
        state_file: StateFile | None = None,
        report_sources: Sequence[ReportSource] = (),
    ) -> None:
        self.settings = settings
        self.policies = policies
        self._connect = connect
        self._uri = uri
        self._clock = clock
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._telemetry.started_at = clock()
        self._state_file = state_file
        self._reports = ReportCollector(report_sources, self._telemetry)
        self._backend: Backend | None = None
        self._retry_at = 0.0
        self._retry_delay = settings.reconnect_initial
        self._stats_period_set: set[str] = set()
        self._tick_lock = threading.Lock()
        self._view_lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._decision: Decision | None = None
        self._holds_seen: dict[str, Hold] = {}
        self._clamp_warned: set[tuple[str, int]] = set()
        # Resolved against the host's total at each tick; before that, what is known.
        self._reserve = settings.reserve.size or 0
        self.last_tick: TickRecord | None = None
        self.wake: Callable[[], None] = lambda: None  # set by the scheduler: tick soon
        self._early = Debounce(EARLY_TICK_GAP)  # reports pull ticks forward this often
        self._index: tuple[Snapshot | None, dict[str, DomainSnapshot]] = (None, {})
        persisted = state_file.load() if state_file is not None else PersistedState()
        self._state = _controller_state(persisted)
        self.holds_book = HoldBook(persisted.holds, clock)
        self._changes = DecisionLog(decisions_log, settings.routine_summary)

    # -- DaemonView ---------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def reserve(self) -> int:
        return self._reserve

    @property
    def connected(self) -> bool:
        return self._backend is not None

    @property
    def backend(self) -> Backend | None:
        return self._backend

    def last_snapshot(self) -> Snapshot | None:
        return self._snapshot

    def last_decision(self) -> Decision | None:
        return self._decision

    def telemetry(self) -> Telemetry:
        return self._telemetry.copy()

    def counters(self) -> Telemetry:
        """The live counters, for components that record into them (channels, operations)."""
        return self._telemetry

    def holds(self) -> Mapping[str, Hold]:
        with self._view_lock:
            return dict(self._holds_seen)

    def stuck(self) -> Mapping[str, float]:
        return _stuck_marks(self._state, self._clock())

    def reports(self) -> Mapping[str, GuestReport]:
        return self._reports.last()

    def controller_state(self) -> ControllerState:
        return self._state

    def clock(self) -> float:
        return self._clock()

    @property
    def stats_period(self) -> int:
        """The balloon statistics period set where it is off: libvirt takes whole seconds."""
        return max(1, round(self.settings.stats_period))

    # -- the tick -------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> Decision | None:
        """One control step. Returns the decision, or None when nothing could be collected
        (the backend is down); never moves anything in that case."""
        with self._tick_lock:
            now = self._clock() if now is None else now
            started = time.perf_counter()
            self.last_tick = None
            self.policies.check()
            decision = self._step(now)
            self._telemetry.record_tick(time.perf_counter() - started, decision is not None, now)
            self._changes.tick_done(now)
            return decision

    def _step(self, now: float) -> Decision | None:
        backend = self._backend_or_reconnect(now)
        if backend is None:
            return None
        started = time.perf_counter()
        try:
            snapshot, holds = self._collect(backend, now)
        except DomainNotFound as error:
            # A domain vanished while it was being read: the expected race, not a lost
            # connection. Nothing moves on a half-read host; the next tick reads it whole.
            log.warning("collect: %s; skipping this tick", error)
            self._telemetry.record_failure("domain_vanished")
            return None
        except BackendError as error:
            self._lost(now, error)
            return None
        collected = time.perf_counter()
        policy_set = self.policies.current
        self._reserve = self.settings.reserve_for(snapshot.host.total)
        decision, self._state = self.decide(snapshot, holds)
        decided = time.perf_counter()
        self._export(snapshot, decision, holds)
        applied, refused = self._act(
            backend, decision, now, policy_rules(snapshot, decision, policy_set)
        )
        self._reports.send_limits(decision)
        self._persist()
        self.last_tick = TickRecord(
            collect=collected - started,
            decide=decided - collected,
            act=time.perf_counter() - decided,
            applied=applied,
            refused=refused,
        )
        return decision

    def decide(
        self,
        snapshot: Snapshot,
        holds: Mapping[str, Hold],
        state: ControllerState | None = None,
    ) -> tuple[Decision, ControllerState]:
        """The law on `snapshot` with this daemon's policies and settings, from `state` (by
        default the daemon's own). Changes nothing: the tick keeps what it returns, and
        bench/decide_replay.py replays it on recorded ticks."""
        return decide(
            snapshot,
            matcher_for(self.policies.current).select,
            self._state if state is None else state,
            reserve=self.settings.reserve_for(snapshot.host.total),
            holds=holds,
            now=snapshot.taken_at,
            stale_after=self.settings.stale_after_seconds,
            stuck_after=self.settings.stuck_after,
        )

    def _collect(self, backend: Backend, now: float) -> tuple[Snapshot, dict[str, Hold]]:
        host = backend.host()
        domains = backend.domains()
        # Statistics without a last_update mean the balloon's stats period is off (libvirt
        # reports last_update 0, or no statistics at all): turn it on. A period an operator
        # set is left as it is.
        off = [d.name for d in domains if d.uuid and _stats_period_off(d)]
        self._ensure_stats_period(backend, off)
        reports = self._reports.collect(backend, domains)
        backend_holds = backend.holds() if isinstance(backend, HoldStore) else {}
        holds, clamped = within_maxmem(self.holds_book.active(backend_holds, now), domains)
        self._warn_clamped(clamped)
        with_reports = tuple(
            replace(d, report=reports[d.uuid]) if d.uuid in reports else d for d in domains
        )
        return Snapshot(taken_at=now, host=host, domains=with_reports), holds

    def _warn_clamped(self, clamped: list[tuple[DomainSnapshot, Hold]]) -> None:
        """Once per pin (it stays as written, in its store, until someone changes it)."""
        for dom, hold in clamped:
            key = (dom.uuid, hold.target or 0)
            if key in self._clamp_warned:
                continue
            self._clamp_warned.add(key)
            log.warning(
                "domain %r: hold by %s pins %s, above its maxmem %s; holding it at maxmem",
                dom.name,
                hold.owner,
                format_size(hold.target or 0),
                format_size(dom.maxmem),
            )

    def _act(
        self, backend: Backend, decision: Decision, now: float, rules: Mapping[str, str]
    ) -> tuple[int, int]:
        """Set the targets of the decision's actions; (applied, refused)."""
        applied: set[str] = set()
        refused = 0
        for action in decision.actions:  # shrinks first: free memory before promising it
            line = describe_action(action, rules.get(action.uuid, ""))
            if self.settings.dry_run:
                self._changes.changed(action, line, now, dry_run=True)
            elif self._backend is not None and self._apply(backend, action, line, now):
                applied.add(action.uuid)
                continue
            else:
                refused += 1
            # Not applied: it must neither count as promised nor feed stuck detection.
            self._state = self._state.forget_target(action.uuid)
        self._telemetry.record_applied(decision, applied)
        return len(applied), refused

    def _apply(self, backend: Backend, action: DomainDecision, line: str, now: float) -> bool:
        try:
            backend.set_target(action.name, action.target)
        except DomainNotFound as error:
            log.warning("domain %r vanished before its target was set: %s", action.name, error)
            self._telemetry.record_failure("domain_vanished")
        except ConnectionLost as error:
            self._telemetry.record_failure("connection_lost")
            self._lost(now, error)
        except BackendError as error:
            log.error("could not %s: %s", line, error)
            self._telemetry.record_failure("set_target")
        else:
            self._changes.changed(action, line, now, dry_run=False)
            return True
        return False

    def _export(self, snapshot: Snapshot, decision: Decision, holds: dict[str, Hold]) -> None:
        with self._view_lock:
            self._snapshot = snapshot
            self._decision = decision
            self._holds_seen = holds

    def _persist(self) -> None:
        if self._state_file is None:
            return
        state = PersistedState(controller=self._state.to_dict(), holds=self.holds_book.own())
        try:
            self._state_file.save(state)
        except OSError as error:
            # Counted apart from `failures` (adjustment failures): status, the metrics and
            # an alert show it, since a restart would lose the holds and marks not written.
            log.error("could not write state file %s: %s", self._state_file.path, error)
            self._telemetry.record_state_write(f"{self._state_file.path}: {error}")
        else:
            self._telemetry.record_state_write(None)

    def operate(self, action: Callable[[Backend], T]) -> T:
        """Run an operator's action on the daemon's own backend, between two ticks: the
        control socket's way to act on a host that lives inside this process (sim://,
        test:///), where another process's balloonctl would change only its own copy."""
        try:
            with self._tick_lock:
                if self._backend is None:
                    raise ConnectionLost(f"{self._uri} is not connected; try again shortly")
                return action(self._backend)
        finally:
            self.wake()  # the next tick sees the change at once

    # -- connection -----------------------------------------------------------------------

    def _backend_or_reconnect(self, now: float) -> Backend | None:
        if self._backend is not None:
            return self._backend
        if now < self._retry_at:
            return None
        try:
            return self.connect(now)
        except BackendError as error:
            self._telemetry.record_connection(False, now)
            self._schedule_retry(now, error)
            return None

    def connect(self, now: float | None = None) -> Backend:
        """Open the backend now; raises its error (one-shot callers want it, the loop
        retries). A no-op when already connected."""
        if self._backend is not None:
            return self._backend
        now = self._clock() if now is None else now
        backend = self._connect()
        self._backend = backend
        self._retry_delay = self.settings.reconnect_initial
        self._stats_period_set.clear()
        self._telemetry.record_connection(True, now)
        log.info("connected to %s", self._uri)
        self._watch(backend)
        return backend

    def _schedule_retry(self, now: float, error: BaseException) -> None:
        delay = self._retry_delay
        self._retry_at = now + delay
        self._retry_delay = min(delay * 2, self.settings.reconnect_cap)
        log.error("%s unreachable (%s); retrying in %.0f s", self._uri, error, delay)

    def _lost(self, now: float, error: BaseException) -> None:
        """Drop the backend; the next tick reconnects (after backoff)."""
        backend, self._backend = self._backend, None
        self._telemetry.record_connection(False, now)
        self._schedule_retry(now, error)
        self._close_quietly(backend, " after a lost connection")

    def _ensure_stats_period(self, backend: Backend, names: list[str]) -> None:
        if not isinstance(backend, StatsPeriod) or self.settings.dry_run:
            return
        for name in names:
            if name in self._stats_period_set:
                continue
            self._stats_period_set.add(name)  # once per connection, even if it fails
            try:
                backend.ensure_stats_period(name, self.stats_period)
            except NotSupported as error:  # Xen's libxl has no period: nothing to turn on
                log.debug("domain %r: no statistics period to set: %s", name, error)
            except BackendError as error:
                log.warning("domain %r: cannot set the statistics period: %s", name, error)

    # -- lifecycle events (any thread) ------------------------------------------------------

    def _watch(self, backend: Backend) -> None:
        try:
            backend.watch(self.on_event)
        except BackendError as error:
            log.warning("lifecycle events unavailable on %s: %s", self._uri, error)

    def on_event(self, event: DomainEvent) -> None:
        log.info("event: %s %s", event.name or event.uuid, event.kind.value)
        if event.kind in _GONE_EVENTS:
            self._forget(event.uuid, event.name)
        if event.kind in _WAKE_EVENTS:
            self.wake()

    def on_report(self, uuid: str, report: GuestReport) -> None:
        """A guest agent report just arrived (the channel hub's thread): tick now when it
        shows the guest stalling above its policy's target (see balloond.daemon.early)."""
        dom = self._domain(uuid)
        if dom is None:
            return  # not seen by a tick yet: the next one reads it anyway
        policy = matcher_for(self.policies.current).select(dom)
        if under_pressure(policy, report) and self._early.due(self._clock()):
            log.debug("domain %r reports pressure above its target: ticking now", dom.name)
            self.wake()

    def _domain(self, uuid: str) -> DomainSnapshot | None:
        """The domain in the last snapshot (an index built once per snapshot: agents report
        every few seconds each, and a host may have a thousand of them)."""
        snapshot = self._snapshot
        if snapshot is None:
            return None
        seen, index = self._index
        if seen is not snapshot:
            index = {d.uuid: d for d in snapshot.domains}
            self._index = (snapshot, index)
        return index.get(uuid)

    def _forget(self, uuid: str, name: str) -> None:
        """Drop a domain that left from what observers see, until the next tick."""
        self._stats_period_set.discard(name)
        with self._view_lock:
            snapshot, decision = self._snapshot, self._decision
            if snapshot is not None:
                kept = tuple(d for d in snapshot.domains if d.uuid != uuid)
                self._snapshot = replace(snapshot, domains=kept)
            if decision is not None:
                kept_d = tuple(d for d in decision.domains if d.uuid != uuid)
                self._decision = replace(decision, domains=kept_d)

    def close(self) -> None:
        self._changes.flush(self._clock())
        backend, self._backend = self._backend, None
        self._reports.close()
        self._close_quietly(backend, "")

    def _close_quietly(self, backend: Backend | None, why: str) -> None:
        """Close a backend being let go of: its error changes nothing, so it is only logged."""
        if backend is None:
            return
        try:
            backend.close()
        except BackendError as error:
            log.debug("closing %s%s: %s", self._uri, why, error)


def _stats_period_off(domain: DomainSnapshot) -> bool:
    return domain.stats is None or domain.stats.last_update is None


def _controller_state(persisted: PersistedState) -> ControllerState:
    # from_dict never raises: a bad document is an empty state, a bad entry is dropped.
    return ControllerState.from_dict(dict(persisted.controller))


def _stuck_marks(state: ControllerState, now: float) -> Mapping[str, float]:
    return {
        uuid: memo.stuck_until
        for uuid, memo in state.domains.items()
        if memo.stuck_until is not None and memo.stuck_until > now
    }
