"""systemd's sd_notify protocol over $NOTIFY_SOCKET, with the standard library only.

Type=notify units wait for READY=1; WatchdogSec= expects WATCHDOG=1 more often than that.
Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so callers need not check.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        # A leading '@' names an abstract socket (Linux): the kernel wants a NUL there.
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address or None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` fields in one datagram; return False when it could not be sent.
        A failure is logged, never raised: the daemon must not die because systemd is gone."""
        if self._address is None:
            return False
        payload = "\n".join(fields).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError as error:
            log.warning("systemd notify to %r failed: %s", self._address, error)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")


def watchdog_interval() -> float | None:
    """Half of the watchdog timeout systemd asked for (WATCHDOG_USEC), as sd_watchdog_enabled
    recommends; None when no watchdog is set or it is meant for another process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        return None
    return seconds / 2 if seconds > 0 else None
