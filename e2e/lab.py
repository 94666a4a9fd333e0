"""The lab session: image, hosts, guests and figures, started once and torn down whatever
happens (see e2e.procs). tests/e2e/conftest.py wraps this in pytest fixtures."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import libvirt

from balloond.units import MiB
from e2e import CACHE, RUN, guests, hosts, image, procs
from e2e.daemon import Balloond
from e2e.guests import Guest
from e2e.report import Report
from e2e.wait import WaitTimeout

LAST_REPORT: Report | None = None  # the figures of the last session, for the summary hook

NEEDS = {
    "libvirtd": "libvirt-daemon",
    "virtlogd": "libvirt-daemon",
    "qemu-system-x86_64": "qemu-system-x86",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "cpio": "cpio",
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
}


def missing() -> str | None:
    """Why this machine cannot run the lab, or None if it can."""
    if os.geteuid() != 0:
        return "the real-VM lab needs root (it starts libvirtd and QEMU)"
    absent = [
        f"{prog} (Debian package {pkg})"
        for prog, pkg in NEEDS.items()
        if shutil.which(prog) is None
    ]
    if absent:
        return "the real-VM lab needs " + ", ".join(absent)
    return None


class Lab:
    def __init__(self) -> None:
        self.report = Report()
        self.image: image.GuestImage | None = None
        self.hosts: dict[str, hosts.LibvirtHost] = {}
        self.guests: list[Guest] = []
        self.daemons: list[Balloond] = []
        self.virt_type = "qemu"
        self.leftovers: list[tuple[int, str]] = []
        self._lock: contextlib.ExitStack | None = None

    # -- session ---------------------------------------------------------------------------
    def start(self) -> None:
        # Quiet libvirt-python's default handler, which prints every (expected) error.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(procs.session_lock())
        stale = procs.ours()  # we hold the lock: anything of ours still running is stale
        if stale:
            procs.kill_pids([pid for pid, _ in stale])
        shutil.rmtree(RUN, ignore_errors=True)
        self.image = image.build()
        self.report.meta.update(image=self.image.key, kernel=self.image.kernel_version)
        for spec in (hosts.PRIMARY, hosts.SECOND):
            host = hosts.LibvirtHost(spec, RUN / "hosts" / spec.name)
            self.hosts[spec.name] = host
            host.start()
        self.report.meta["primary_owned"] = self.hosts["primary"].owned
        self.virt_type = self._probe_kvm()
        self.report.meta["virt_type"] = self.virt_type

    def stop(self) -> list[str]:
        for g in self.guests:
            g.close()
        errors = procs.CLEANUP.run()
        self.leftovers = hosts.wait_stopped()
        self.report.write()
        global LAST_REPORT
        LAST_REPORT = self.report
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        return errors

    @property
    def primary(self) -> hosts.LibvirtHost:
        return self.hosts["primary"]

    @property
    def second(self) -> hosts.LibvirtHost:
        return self.hosts["second"]

    # -- guests ----------------------------------------------------------------------------
    def boot(
        self,
        name: str,
        host: str = "primary",
        *,
        maxmem: int = 512 * MiB,
        current: int | None = None,
        wait: bool = True,
        timeout: float = 240.0,
    ) -> Guest:
        assert self.image is not None
        guest = guests.boot(
            self.hosts[host],
            self.image,
            name,
            maxmem=maxmem,
            current=current,
            virt_type=self.virt_type,
        )
        self.guests.append(guest)
        if wait:
            guest.wait_booted(timeout)
        return guest

    def destroy(self, guest: Guest) -> None:
        guests.destroy(guest)
        with contextlib.suppress(ValueError):
            self.guests.remove(guest)

    @contextlib.contextmanager
    def guest(self, name: str, **kw: Any) -> Iterator[Guest]:
        g = self.boot(name, **kw)
        try:
            yield g
        finally:
            self.destroy(g)

    def daemon(self, host: str = "primary", **kw: Any) -> Balloond:
        """Start balloond on `host` (stopped at session end, or earlier with `.stop()`)."""
        d = Balloond(self.hosts[host], **kw)
        self.daemons.append(d)
        d.start()
        return d

    # -- KVM ---------------------------------------------------------------------------------
    def _probe_kvm(self) -> str:
        """'kvm' only if a KVM guest really boots here (nested virtualisation often exposes
        /dev/kvm and then hangs); the answer is cached per QEMU version and host kernel."""
        forced = os.environ.get("BALLOOND_E2E_VIRT")
        if forced in ("qemu", "kvm"):
            return forced
        if not os.path.exists("/dev/kvm"):
            return "qemu"
        assert self.image is not None
        qemu = subprocess.run(
            [guests.emulator(), "--version"], capture_output=True, text=True, check=False
        ).stdout.split("\n")[0]
        key = f"{qemu} {os.uname().release}"
        cache = CACHE / "kvm-probe.json"
        with contextlib.suppress(OSError, ValueError):
            known = json.loads(cache.read_text())
            if known.get("key") == key:
                return str(known["virt_type"])
        self.virt_type = "kvm"
        result = "qemu"
        try:
            g = self.boot("kvmprobe", maxmem=256 * MiB, timeout=40)
            result = "kvm"
            self.destroy(g)
        except (WaitTimeout, libvirt.libvirtError) as exc:
            self.report.meta["kvm_probe"] = f"KVM guest did not boot: {exc}"[:300]
            for g in list(self.guests):
                self.destroy(g)
        cache.write_text(json.dumps({"key": key, "virt_type": result}) + "\n")
        return result
