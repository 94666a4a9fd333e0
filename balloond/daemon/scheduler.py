"""Run the daemon's tick on a timer (apscheduler 3), with signals and systemd notification.

One interval job owns time: `max_instances=1` so ticks never overlap, `coalesce` so a late
tick runs once rather than catching up. Events (a domain started, SIGHUP) pull the next run
forward instead of ticking from another thread; one that arrives while a tick runs is kept and
served by another tick right after it (apscheduler would skip a run due while one is running,
and a migration that began mid-tick would wait a whole interval to be seen).

A separate watchdog job pets systemd only while ticks keep finishing: a tick stuck in a hung
hypervisor call stops the petting, and systemd restarts the daemon (WatchdogSec= in the unit).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from balloond.daemon.loop import Daemon
from balloond.daemon.notify import Notifier, watchdog_interval
from balloond.units import format_size

log = logging.getLogger("balloond.daemon")

TICK_JOB = "balloond-tick"
WATCHDOG_JOB = "balloond-watchdog"

AfterTick = Callable[[], None]


class Runner:
    def __init__(
        self,
        daemon: Daemon,
        *,
        notifier: Notifier | None = None,
        after_tick: Sequence[AfterTick] = (),
    ) -> None:
        self.daemon = daemon
        self.notifier = notifier if notifier is not None else Notifier()
        self._after_tick = tuple(after_tick)
        self._stop = threading.Event()
        self._scheduler: Any = None
        self._last_tick_end = time.monotonic()
        self._ready_sent = False
        self._wake_lock = threading.Lock()
        self._ticking = False
        self._wake_pending = False
        self._watchdog_limit = 3 * daemon.settings.interval
        daemon.wake = self.wake

    def start(self) -> None:
        interval = self.daemon.settings.interval
        scheduler = BackgroundScheduler(timezone=UTC, daemon=True)
        scheduler.add_job(
            self._run_tick,
            "interval",
            seconds=interval,
            id=TICK_JOB,
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval)),
        )
        pet_every = watchdog_interval()
        if pet_every is not None and self.notifier.enabled:
            self._watchdog_limit = max(3 * interval, 2 * pet_every)
            scheduler.add_job(
                self._pet_watchdog,
                "interval",
                seconds=pet_every,
                id=WATCHDOG_JOB,
                max_instances=1,
                coalesce=True,
            )
        scheduler.start()
        self._scheduler = scheduler

    def wake(self) -> None:
        """Run the next tick now (from any thread); a no-op when not scheduled."""
        scheduler = self._scheduler
        if scheduler is None or self._stop.is_set():
            return
        with self._wake_lock:
            if self._ticking:
                self._wake_pending = True  # the running tick serves it before returning
                return
        with contextlib.suppress(LookupError):  # shutting down: the job is gone
            scheduler.modify_job(TICK_JOB, next_run_time=datetime.now(UTC))

    def reload(self) -> None:
        """SIGHUP: reload the policies at the next tick, which runs now."""
        self.notifier.reloading()
        self._ready_sent = False  # systemd waits for READY=1 again after RELOADING=1
        self.daemon.policies.request_reload()
        self.wake()

    def stop(self) -> None:
        self._stop.set()

    def wait(self, duration: float | None = None) -> None:
        """Block the calling (main) thread until `stop`, a signal, or `duration` seconds."""
        deadline = None if duration is None else time.monotonic() + duration
        while not self._stop.is_set():
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            # Short waits so that signal handlers run promptly on the main thread.
            self._stop.wait(min(remaining, 1.0))

    def shutdown(self) -> None:
        self._stop.set()
        self.notifier.stopping()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=True)  # lets a running tick finish: no half-applied act
        for hook in self._after_tick:
            self._run_hook(hook)  # leave the freshest figures behind (textfile)
        self.daemon.close()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop gracefully; SIGHUP reloads policies. Main thread only."""

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: stopping", signal.Signals(signum).name)
            self.stop()

        def hup(_signum: int, _frame: FrameType | None) -> None:
            log.info("SIGHUP: reloading policies")
            self.reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    # -- jobs (scheduler threads) -----------------------------------------------------------

    def _run_tick(self) -> None:
        """One tick, then one more at once if wake() was called while it ran (wakes coalesce)."""
        again = True
        while again:
            with self._wake_lock:
                self._ticking = True
                self._wake_pending = False
            try:
                self._tick_once()
            finally:
                with self._wake_lock:
                    again = self._wake_pending and not self._stop.is_set()
                    self._ticking = again

    def _tick_once(self) -> None:
        try:
            self.daemon.tick()
        except Exception:  # a bug in one tick must not end the daemon: log it, tick again
            log.exception("tick failed")
            self.daemon.counters().record_tick(0.0, False, self.daemon.clock())
        self._last_tick_end = time.monotonic()
        for hook in self._after_tick:
            self._run_hook(hook)
        status = status_line(self.daemon)
        if not self._ready_sent:
            self._ready_sent = self.notifier.ready(status) or not self.notifier.enabled
        else:
            self.notifier.status(status)

    def _run_hook(self, hook: AfterTick) -> None:
        try:
            hook()
        except Exception as error:  # an exporter problem must not stop balancing
            log.error("after-tick hook %s failed: %s", getattr(hook, "__name__", hook), error)

    def _pet_watchdog(self) -> None:
        if time.monotonic() - self._last_tick_end <= self._watchdog_limit:
            self.notifier.watchdog()
        else:
            log.error(
                "no tick has finished for %.0f s; not petting the systemd watchdog",
                time.monotonic() - self._last_tick_end,
            )


def status_line(daemon: Daemon) -> str:
    """The one-line STATUS= systemd shows in `systemctl status`."""
    if not daemon.connected:
        return f"{daemon.uri} unreachable; retrying"
    decision = daemon.last_decision()
    if decision is None:
        return f"connected to {daemon.uri}; no decision yet"
    acting = len(decision.actions)
    mode = " (dry run)" if daemon.settings.dry_run else ""
    return (
        f"{len(decision.domains)} domains, {acting} adjusted last tick{mode}; "
        f"budget {format_size(decision.budget)}"
    )
