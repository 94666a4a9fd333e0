"""AgentHub: one unix-socket connection per domain to its guest agent's channel.

libvirt runs `<channel type='unix'><source mode='bind' path=.../>` as a socket server in QEMU;
the guest writes report lines to its virtio-serial port and they come out here. One background
thread owns every socket (a selector); the daemon's tick thread only calls `sync`, `reports`
and `send_limits`, which hand state over under a lock.

Identity comes from the socket we connected to: a line is parsed with its domain's maxmem and
stored under its domain's UUID, so nothing a guest writes can address another domain. What a
guest may cost is budgeted per channel, in bytes (not lines: a bare newline is a line too):
a channel that sends more than its budget (8 KiB/s, bursts of 64 KiB; an agent sends about
300 bytes every few seconds) is cut off for 30 s, logged and counted
(`balloond_channel_cutoffs_total`). Within the budget, reports beyond a token bucket of two a
second are refused in bulk without being parsed and the channel is left unread for a moment;
a blank line is skipped; a line over 4 KiB is skipped up to its newline; a socket that closes
(guest save, migration, QEMU exit) is retried until the path answers again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from balloond.backend.base import OnReport
from balloond.channels.ratelimit import TokenBucket
from balloond.channels.xenstore import XenstoreReader
from balloond.errors import ReportRejected
from balloond.model import DomainSnapshot, GuestReport
from balloond.reports import MAX_LINE, PROTOCOL_VERSION, parse_report
from balloond.telemetry import Telemetry

log = logging.getLogger("balloond.channels")

READ_CHUNK = 65536


@dataclass(frozen=True)
class HubSettings:
    max_age: float = 30.0  # seconds; an older report is no report (6 missed 5 s reports)
    rate: float = 2.0  # reports per second per domain, sustained
    burst: float = 20.0  # reports a domain may send at once (pressure spikes)
    reconnect_interval: float = 2.0  # seconds between attempts on a dead channel
    max_pause: float = 1.0  # seconds a flooding domain is left unread, at most
    byte_rate: float = 8192.0  # bytes per second per channel, sustained
    byte_burst: float = 65536.0  # bytes a channel may send at once (one full read)
    cutoff: float = 30.0  # seconds a channel over its byte budget stays disconnected


@dataclass(frozen=True)
class _Target:
    uuid: str
    name: str
    path: str
    maxmem: int


class _Link:
    """One domain's connection and what we remember about its agent."""

    def __init__(self, target: _Target) -> None:
        self.target = target
        self.sock: socket.socket | None = None
        self.buffer = bytearray()
        self.skipping = False  # inside an over-long line: drop up to the next newline
        self.last_seq: int | None = None
        self.next_attempt = 0.0
        self.limits: tuple[int, int] | None = None
        self.limits_sent = False
        self.paused_until: float | None = None  # flooding: not read until then (monotonic)


class AgentHub:
    """A `ReportSource` over guest agent channels. Call `close()` when done."""

    def __init__(
        self,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.time,
        settings: HubSettings | None = None,
        xenstore: XenstoreReader | None = None,
        on_report: OnReport | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.on_report = on_report  # may be set later (the daemon is built after its hub)
        self.clock = clock
        self.settings = settings or HubSettings()
        # Xen guests report through xenstore instead of a socket; read it when dom0 can.
        if xenstore is None and XenstoreReader.available():
            xenstore = XenstoreReader(telemetry, clock, max_age=self.settings.max_age)
        self.xenstore = xenstore
        self._lock = threading.Lock()
        self._wanted: dict[str, _Target] = {}
        self._links: dict[str, _Link] = {}
        self._reports: dict[str, GuestReport] = {}
        self._buckets: dict[str, TokenBucket] = {}  # reports, by domain UUID
        self._budgets: dict[str, TokenBucket] = {}  # bytes, by domain UUID
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="balloond-agent-hub", daemon=True)
        self._thread.start()

    # -- the daemon's side --------------------------------------------------------------
    def sync(self, domains: Iterable[DomainSnapshot]) -> None:
        """Follow the current domain list: connect new channels, drop vanished domains.
        Xen domains' xenstore reports are read here, on the caller's thread."""
        domains = list(domains)
        if self.xenstore is not None:
            self.xenstore.sync(domains)
        wanted = {
            d.uuid: _Target(d.uuid, d.name, d.channel, d.maxmem) for d in domains if d.channel
        }
        with self._lock:
            self._wanted = wanted
            for uuid in [u for u in self._reports if u not in wanted]:
                del self._reports[uuid]
        self._wake()

    def reports(self) -> Mapping[str, GuestReport]:
        """The newest report of each domain, if it is younger than `max_age`."""
        now = self.clock()
        merged = dict(self.xenstore.reports()) if self.xenstore is not None else {}
        with self._lock:
            merged.update(
                (uuid, report)
                for uuid, report in self._reports.items()
                if uuid in self._wanted and now - report.received_at <= self.settings.max_age
            )
        return merged

    def send_limits(self, uuid: str, floor: int, ceiling: int) -> bool:
        """Tell the domain's agent its self-adjustment range (bytes). Sent once per change
        and again after each reconnect; False when the domain has no live channel now."""
        with self._lock:
            link = self._links.get(uuid)
            if link is None:
                return False
            if link.limits != (floor, ceiling):
                link.limits, link.limits_sent = (floor, ceiling), False
            if not link.limits_sent:
                link.limits_sent = self._send(link, _limits_line(floor, ceiling))
            return link.limits_sent

    def connected(self) -> set[str]:
        """UUIDs with a live connection (for status and tests)."""
        with self._lock:
            return {uuid for uuid, link in self._links.items() if link.sock is not None}

    def close(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake()
        self._thread.join(timeout=5.0)
        with self._lock:
            for link in self._links.values():
                self._disconnect(link)
            self._links.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the hub thread -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping:
            self._reconcile()
            self._connect_due()
            self._resume_due()
            for key, _ in self._selector.select(timeout=self._timeout()):
                if key.data is None:
                    self._drain_wake()
                else:
                    self._read(key.data)

    def _reconcile(self) -> None:
        with self._lock:
            for uuid, link in list(self._links.items()):
                target = self._wanted.get(uuid)
                if target is None or target.path != link.target.path:
                    self._disconnect(link)
                    del self._links[uuid]
                    if target is None:
                        self._buckets.pop(uuid, None)
                        self._budgets.pop(uuid, None)
                elif target != link.target:
                    link.target = target  # maxmem or name changed: same connection
            for uuid, target in self._wanted.items():
                if uuid not in self._links:
                    self._links[uuid] = _Link(target)

    def _connect_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            for link in self._links.values():
                if link.sock is None and now >= link.next_attempt:
                    self._connect(link, now)

    def _timeout(self) -> float:
        now, timeout = time.monotonic(), self.settings.reconnect_interval
        with self._lock:
            for link in self._links.values():
                if link.paused_until is not None:
                    timeout = min(timeout, max(0.0, link.paused_until - now))
        return timeout

    def _resume_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            for link in self._links.values():
                if link.paused_until is not None and now >= link.paused_until:
                    link.paused_until = None
                    if link.sock is not None:
                        self._selector.register(link.sock, selectors.EVENT_READ, link)

    def _pause(self, link: _Link) -> None:
        """Stop reading a flooding domain until its bucket has a token again: its lines
        wait in the socket (QEMU, then the guest's port, block), costing us nothing."""
        if link.paused_until is None and link.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(link.sock)
            link.paused_until = time.monotonic() + min(
                self.settings.max_pause, 1.0 / self.settings.rate
            )

    def _connect(self, link: _Link, now: float) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(link.target.path)
        except OSError:
            sock.close()  # not there yet (guest saved, migrating, QEMU starting): retry
            link.next_attempt = now + self.settings.reconnect_interval
            return
        link.sock, link.buffer, link.skipping, link.last_seq = sock, bytearray(), False, None
        link.paused_until = None
        self._selector.register(sock, selectors.EVENT_READ, link)
        if link.limits is not None:
            link.limits_sent = self._send(link, _limits_line(*link.limits))

    def _disconnect(self, link: _Link) -> None:
        if link.sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(link.sock)
        link.sock.close()
        link.sock = None
        link.limits_sent = False
        link.paused_until = None
        link.next_attempt = time.monotonic() + self.settings.reconnect_interval

    def _read(self, link: _Link) -> None:
        accepted: list[GuestReport] = []
        with self._lock:
            if link.sock is None:
                return
            try:
                data = link.sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._disconnect(link)
                return
            if not self._within_budget(link, len(data)):
                return
            accepted = self._take_lines(link, _split(link, data))
        self._tell(link.target.uuid, accepted[-1:])  # the newest is the one that counts

    def _within_budget(self, link: _Link, size: int) -> bool:
        """Charge `size` bytes to the channel; over budget, it is cut off (called under
        the lock). The budget is the domain's, kept across reconnects."""
        target, now = link.target, self.clock()
        budget = self._budgets.setdefault(
            target.uuid, TokenBucket(self.settings.byte_rate, self.settings.byte_burst, now)
        )
        if budget.take(now, size):
            return True
        log.warning(
            "domain %r: its agent channel sent more than %.0f bytes/s (bursts of %.0f); "
            "cut off for %.0f s",
            target.name,
            self.settings.byte_rate,
            self.settings.byte_burst,
            self.settings.cutoff,
        )
        self.telemetry.record_cutoff(target.uuid)
        self._disconnect(link)
        link.next_attempt = time.monotonic() + self.settings.cutoff
        return False

    def _take_lines(self, link: _Link, lines: list[bytes | None]) -> list[GuestReport]:
        """Parse the lines the report bucket allows; the rest are refused in one count,
        unparsed, and the channel is left unread until a token is back."""
        target, now = link.target, self.clock()
        bucket = self._buckets.setdefault(
            target.uuid, TokenBucket(self.settings.rate, self.settings.burst, now)
        )
        accepted: list[GuestReport] = []
        for index, line in enumerate(lines):
            if not bucket.take(now):
                self.telemetry.record_report(target.name, "rate_limited", len(lines) - index)
                self._pause(link)
                break
            report = self._accept(link, line, now)
            if report is not None:
                accepted.append(report)
        return accepted

    def _tell(self, uuid: str, reports: list[GuestReport]) -> None:
        callback = self.on_report
        if callback is None:
            return
        for report in reports:
            try:
                callback(uuid, report)
            except Exception:  # a listener's bug must not stop the channels
                log.exception("report listener failed for domain %s", uuid)

    def _accept(self, link: _Link, line: bytes | None, now: float) -> GuestReport | None:
        """One complete line (None: an over-long one we skipped). Called under the lock.
        Returns the report when it was accepted."""
        target = link.target
        try:
            if line is None:
                raise ReportRejected("too_long", f"report line longer than {MAX_LINE} bytes")
            report = parse_report(line, maxmem=target.maxmem, now=now, previous_seq=link.last_seq)
        except ReportRejected as rejected:
            self.telemetry.record_report(target.name, rejected.reason)
            return None
        link.last_seq = report.seq
        self._reports[target.uuid] = report
        self.telemetry.record_report(target.name, None)
        if report.requested_target is not None:
            self._send(link, _ack_line(report.seq))
        return report

    def _send(self, link: _Link, line: bytes) -> bool:
        """Non-blocking: a guest that does not read its port must not stall the hub."""
        if link.sock is None:
            return False
        try:
            return link.sock.send(line) == len(line)
        except OSError:
            return False

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already woken (buffer full) or closing
            self._wake_w.send(b"x")

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass


def _split(link: _Link, data: bytes) -> list[bytes | None]:
    """Complete lines from the link's buffer and `data`, in one pass (a read of 64 KiB of
    bare newlines is one split, not 65,536 copies); blank lines are dropped, None stands
    for a line that was too long."""
    *complete, rest = data.split(b"\n")
    lines: list[bytes | None] = []
    for index, part in enumerate(complete):
        if index == 0:
            if link.skipping:  # the tail of an over-long line, counted when it overflowed
                link.skipping = False
                continue
            part = bytes(link.buffer) + part
            link.buffer.clear()
        if part:
            lines.append(None if len(part) > MAX_LINE else part)
    if link.skipping:
        return lines  # still inside an over-long line: its bytes are not kept
    link.buffer += rest
    if len(link.buffer) > MAX_LINE:
        lines.append(None)
        link.buffer.clear()
        link.skipping = True
    return lines


def _limits_line(floor: int, ceiling: int) -> bytes:
    message = {"v": PROTOCOL_VERSION, "type": "limits", "floor": floor, "ceiling": ceiling}
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _ack_line(seq: int) -> bytes:
    return json.dumps({"v": PROTOCOL_VERSION, "type": "ack", "seq": seq}).encode() + b"\n"
