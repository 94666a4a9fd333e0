"""The Xen lab session: images, the nested Xen host, its domUs and the figures, started once
and torn down whatever happens (e2e.procs). tests/xen/conftest.py wraps it in fixtures.

It takes the machine-wide lab lock (e2e.procs.session_lock), like the KVM lab: both keep the
two cores busy with TCG.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import libvirt

from e2e import CACHE, procs
from e2e.guests import MiB
from e2e.hosts import wait_stopped
from e2e.report import Report
from e2e.xen import guests, image
from e2e.xen.guests import XenGuest
from e2e.xen.host import XEN_RUN, XenHost

REPORT = CACHE / "xen-report.json"
LAST_REPORT: Report | None = None
NEEDS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "cpio": "cpio",
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "readelf": "binutils",
}


def missing() -> str | None:
    """Why this machine cannot run the Xen lab, or None if it can."""
    if os.geteuid() != 0:
        return "the Xen lab needs root (apt-get download, QEMU's user network ports)"
    absent = [f"{p} (Debian package {pkg})" for p, pkg in NEEDS.items() if not shutil.which(p)]
    return "the Xen lab needs " + ", ".join(absent) if absent else None


class XenLab:
    def __init__(self) -> None:
        self.report = Report(REPORT)
        self.host: XenHost | None = None
        self.guests: list[XenGuest] = []
        self.leftovers: list[tuple[int, str]] = []
        self._lock: contextlib.ExitStack | None = None
        self._locked_at: float | None = None

    def start(self) -> None:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(procs.session_lock())
        self._locked_at = time.monotonic()
        stale = procs.ours()  # we hold the lock: anything of ours still running is stale
        if stale:
            procs.kill_pids([pid for pid, _ in stale])
        shutil.rmtree(XEN_RUN, ignore_errors=True)
        started = time.monotonic()
        images = image.build()
        self.report.record("xen", "image build or cache lookup s", time.monotonic() - started)
        self.report.meta.update(image=images.key, xen=images.versions["xen-utils-4.17"])
        self.host = XenHost(images)
        self.host.start()
        self.report.record("xen", "QEMU start -> dom0 ready s", self.host.boot_seconds)
        self.report.record("xen", "dom0 uptime at ready s", self.host.dom0_uptime)

    def stop(self) -> list[str]:
        errors = procs.CLEANUP.run()
        self.leftovers = wait_stopped()
        if self._locked_at is not None:  # the lab's own time, not the wait for the lock
            took = time.monotonic() - self._locked_at
            self.report.record("xen", "whole lab, lock taken -> all stopped s", took)
        self.report.write()
        global LAST_REPORT
        LAST_REPORT = self.report
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        return errors

    @property
    def xen(self) -> XenHost:
        assert self.host is not None, "the Xen host is not running"
        return self.host

    def create(self, name: str, *, wait: bool = True, **kw: Any) -> XenGuest:
        guest = guests.create(self.xen, name, **kw)
        self.guests.append(guest)
        self.report.record("domU create", guest.name, guest.create_seconds)
        if wait:
            self.report.record("domU create -> ready", guest.name, guest.wait_booted())
        return guest

    def destroy(self, guest: XenGuest) -> None:
        guests.destroy(guest)
        with contextlib.suppress(ValueError):
            self.guests.remove(guest)

    @contextlib.contextmanager
    def guest(self, name: str, **kw: Any) -> Iterator[XenGuest]:
        g = self.create(name, **kw)
        try:
            yield g
        finally:
            self.destroy(g)


__all__ = ["MiB", "XenLab", "missing"]
