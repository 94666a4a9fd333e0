"""PSI triggers: the kernel wakes us (POLLPRI) when memory stall crosses a threshold.

`echo "some 150000 1000000" > /proc/pressure/memory` on an fd kept open arms a trigger:
POLLPRI fires when tasks stalled for 150 ms within any 1 s window (kernel
Documentation/accounting/psi.rst). Needs Linux 5.2+ and, for unprivileged users, a window
that is a multiple of 2 s (6.x). Anything that fails leaves us with periodic reports only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select

PRESSURE_FILE = "/proc/pressure/memory"
DEFAULT_STALL_US = 150000
DEFAULT_WINDOW_US = 1000000


class Trigger:
    """A pollable wake source: `fileno()`, the poll `mask` that means "pressure rose", and
    `drain()` to consume the event. PSI uses POLLPRI; tests use a pipe with POLLIN."""

    def __init__(self, fd: int, mask: int, label: str, drain_reads: bool = False) -> None:
        self.fd: int | None = fd
        self.mask = mask
        self.label = label
        self._drain_reads = drain_reads

    def fileno(self) -> int:
        if self.fd is None:
            raise ValueError("%s: trigger closed" % self.label)
        return self.fd

    def drain(self) -> None:
        if self._drain_reads and self.fd is not None:
            with contextlib.suppress(OSError):
                os.read(self.fd, 4096)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def psi_trigger(
    path: str, stall_us: int = DEFAULT_STALL_US, window_us: int = DEFAULT_WINDOW_US
) -> Trigger:
    """Arm a PSI trigger on `path`; return a Trigger, or raise OSError (no PSI, EPERM,
    EINVAL for a window the kernel refuses)."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        # Kernel pressure files report size 0; a file with content is a copy (a --root
        # fixture) that a trigger write would overwrite.
        if os.fstat(fd).st_size > 0:
            raise OSError(errno.ENOTSUP, "not a kernel pressure file", path)
        os.write(fd, ("some %d %d\0" % (stall_us, window_us)).encode("ascii"))
    except OSError:
        os.close(fd)
        raise
    return Trigger(fd, select.POLLPRI, "psi %s" % path)


def pipe_trigger(fd: int) -> Trigger:
    """A Trigger on a pipe or socket read end: a byte written is a pressure event."""
    return Trigger(fd, select.POLLIN, "fd %d" % fd, drain_reads=True)
