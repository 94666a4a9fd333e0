"""The agent: one tick samples /proc and sends a report; `run()` owns time and wakes on a
period, a pressure trigger, host messages and local requests.
"""

from __future__ import annotations

import logging
import select
import time
from typing import Callable, Dict, Union

from balloond_guest import demand as demand_mod
from balloond_guest import protocol, xen
from balloond_guest.control import ControlServer
from balloond_guest.protocol import Message
from balloond_guest.psi import Trigger
from balloond_guest.selfadjust import SelfAdjuster
from balloond_guest.transport import Transport

# What run() polls, by file descriptor: "trigger", "control" or "transport"; and the key
# "transport-hup" (True) while a hung-up transport is left out until the next periodic report.
Watched = Dict[Union[int, str], Union[str, bool]]

log = logging.getLogger("balloond-guest")

HANGUP = select.POLLHUP | select.POLLERR | select.POLLNVAL


class Settings:
    """Everything the agent is told on its command line, validated once."""

    def __init__(
        self,
        root: str = "/",
        interval: float = 5.0,
        buffer: int = demand_mod.DEFAULT_BUFFER,
        buffer_ratio: float = demand_mod.DEFAULT_BUFFER_RATIO,
        floor: int = demand_mod.DEFAULT_FLOOR,
        auto: bool = False,
        min_gap: float = 0.2,
        limits: tuple[int, int] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive, got: %r" % interval)
        if not 0 <= buffer_ratio <= 1:
            raise ValueError("buffer ratio must be between 0 and 1, got: %r" % buffer_ratio)
        self.root = root
        self.interval = float(interval)
        self.buffer = buffer
        self.buffer_ratio = buffer_ratio
        self.floor = floor
        self.auto = auto
        self.min_gap = min_gap  # pressure reports closer than this are merged
        self.limits = limits  # (floor, ceiling) to start self-adjusting before the host speaks


class Agent:
    def __init__(
        self,
        settings: Settings,
        transport: Transport | None,
        trigger: Trigger | None = None,
        control: ControlServer | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        reopen: Callable[[], Transport] | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.trigger = trigger
        self.control = control
        self.clock = clock
        self.reopen = reopen  # called to get a new transport after the host end closed
        self.adjuster = SelfAdjuster()
        if settings.limits is not None:
            self.adjuster.set_limits(*settings.limits)
        # Starting seq at the wall clock in ms keeps it rising across agent restarts.
        self.seq = int(wall() * 1000)
        self.previous: demand_mod.Sample | None = None
        self.request: int | None = None  # a manual request (`target SIZE`): sticky
        self.auto_request: int | None = None
        self.last_sent_at: float | None = None
        self.sent = 0
        self.dropped = 0
        self._stop_requested = False
        self._deferred_at: float | None = None  # a pressure report held back by min_gap

    # -- one step -----------------------------------------------------------------------
    def tick(self, trigger: str = "periodic") -> Message:
        """Sample, decide, report. Returns the report dict (sent or not)."""
        now = self.clock()
        sample = demand_mod.take_sample(self.settings.root, now)
        rates = demand_mod.rates(self.previous, sample)
        self.previous = sample
        need = demand_mod.demand_of(sample.meminfo)
        wanted = demand_mod.wanted_target(
            need, self.settings.buffer, self.settings.buffer_ratio, self.settings.floor
        )
        if self.settings.auto:
            self._self_adjust(sample, wanted)
        request = self.request if self.request is not None else self.auto_request
        self.seq += 1
        message = protocol.report(
            self.seq, sample, rates, need, request, trigger, self.settings.interval
        )
        self._send(protocol.encode(message))
        self.last_sent_at = now
        return message

    def _self_adjust(self, sample: demand_mod.Sample, wanted: int | None) -> None:
        found = xen.read_target(self.settings.root)
        if found is not None:  # Xen: the guest moves its own balloon
            path, current, _ = found
            nxt = self.adjuster.step(current, wanted)
            if nxt is not None:
                try:
                    xen.write_target(self.settings.root, nxt)
                except OSError as error:  # the driver refused: keep reporting regardless
                    log.warning("self-adjust: cannot write %d to %s: %s", nxt, path, error)
                    return
                log.info("self-adjust: %s %d -> %d bytes", path, current, nxt)
                found = xen.read_target(self.settings.root)  # in the file's unit (KiB)
                nxt = found[1] if found is not None and found[1] is not None else nxt
            # The host sets the domain's target too (xenstore memory/target, which the
            # balloon driver follows): tell it the size chosen here, or it undoes it.
            if self.adjuster.ready and current is not None:
                self.auto_request = nxt if nxt is not None else self.adjuster.clamp(current)
            return
        # KVM: no guest-side knob; ask the host, which applies it within policy.
        current = (
            self.auto_request if self.auto_request is not None else sample.meminfo.get("MemTotal")
        )
        nxt = self.adjuster.step(current, wanted)
        if nxt is not None:
            self.auto_request = nxt
        elif self.auto_request is None and self.adjuster.ready and current is not None:
            self.auto_request = self.adjuster.clamp(current)

    def _send(self, line: bytes) -> None:
        if self.transport is None and self.reopen is not None:
            try:
                self.transport = self.reopen()
            except OSError as error:
                log.debug("transport still unavailable: %s", error)
        if self.transport is not None and self.transport.send(line):
            self.sent += 1
        else:
            self.dropped += 1

    # -- messages -----------------------------------------------------------------------
    def handle_host_line(self, line: bytes) -> Message | None:
        try:
            message = protocol.decode_host_message(line)
        except protocol.ProtocolError as error:
            log.warning("%s", error)
            return None
        if message["type"] == "limits":
            self.adjuster.set_limits(message["floor"], message["ceiling"])
        return message

    def set_request(self, size: int | None) -> None:
        """A manual target (bytes), or None to return to automatic requests."""
        self.request = size

    # -- the loop -----------------------------------------------------------------------
    def run(self, max_ticks: int | None = None) -> int:
        """Report every `interval` and at once on pressure, until `stop()` or `max_ticks`."""
        poller = select.poll()
        watched: Watched = {}
        next_at = self.clock()
        ticks = 0
        while not self._stop_requested and (max_ticks is None or ticks < max_ticks):
            self._watch(poller, watched)
            wake_at = min(next_at, self._deferred_at or next_at)
            timeout_ms = max(0, int((wake_at - self.clock()) * 1000 + 0.999))
            for fd, events in poller.poll(timeout_ms):
                ticks += self._on_event(poller, watched, fd, events)
            if self._deferred_at is not None and self.clock() >= self._deferred_at:
                self._deferred_at = None
                self.tick("pressure")
                ticks += 1
            elif self.clock() >= next_at:
                self.tick("periodic")
                ticks += 1
                next_at = max(next_at + self.settings.interval, self.clock())
                watched.pop("transport-hup", None)  # host may be back: poll it again
        return ticks

    def stop(self) -> None:
        self._stop_requested = True

    def _watch(self, poller: select.poll, watched: Watched) -> None:
        wanted: dict[int, tuple[str, int]] = {}
        if self.trigger is not None:
            wanted[self.trigger.fileno()] = ("trigger", self.trigger.mask)
        if self.control is not None:
            wanted[self.control.fileno()] = ("control", select.POLLIN)
        fd = self.transport.readable() if self.transport is not None else None
        if fd is not None and "transport-hup" not in watched:
            wanted[fd] = ("transport", select.POLLIN)
        for fd in [f for f in watched if isinstance(f, int) and f not in wanted]:
            poller.unregister(fd)
            del watched[fd]
        for fd, (role, mask) in wanted.items():
            if watched.get(fd) != role:
                poller.register(fd, mask)
                watched[fd] = role

    def _on_event(self, poller: select.poll, watched: Watched, fd: int, events: int) -> int:
        role = watched.get(fd)
        if role == "trigger" and self.trigger is not None:
            return self._on_trigger(self.trigger, poller, watched, fd, events)
        if role == "control" and self.control is not None and self.control.serve(self):
            self.tick("request")
            return 1
        if role == "transport" and self.transport is not None:
            self._on_transport(self.transport, poller, watched, fd, events)
        return 0

    def _on_trigger(
        self, trigger: Trigger, poller: select.poll, watched: Watched, fd: int, events: int
    ) -> int:
        if not events & trigger.mask:  # trigger broken (POLLERR): periodic only
            log.warning("pressure trigger %s failed; periodic reports only", trigger.label)
            self._forget(poller, watched, fd)
            self.trigger = None
            return 0
        trigger.drain()
        last = self.last_sent_at
        if last is None or self.clock() - last >= self.settings.min_gap:
            self.tick("pressure")
            return 1
        # Right after another report: send this one when the gap has passed, not never.
        if self._deferred_at is None:
            self._deferred_at = last + self.settings.min_gap
        return 0

    def _on_transport(
        self, transport: Transport, poller: select.poll, watched: Watched, fd: int, events: int
    ) -> None:
        if events & select.POLLIN:
            try:
                for line in transport.read_lines():
                    self.handle_host_line(line)
                return
            except EOFError as error:
                log.info("%s; reopening at the next report", error)
                self._forget(poller, watched, fd)
                transport.close()
                self.transport = None
                return
        if events & HANGUP:
            # A virtio port whose host end is not connected polls as HUP forever: stop
            # polling it until the next periodic report instead of spinning.
            self._forget(poller, watched, fd)
            watched["transport-hup"] = True

    @staticmethod
    def _forget(poller: select.poll, watched: Watched, fd: int) -> None:
        poller.unregister(fd)
        watched.pop(fd, None)
