"""One nested Xen host: QEMU (TCG) booting Xen 4.17 with a PV dom0 from e2e.xen.image.

The test reaches dom0 over QEMU's user network, forwarded to loopback ports of this machine:
- dom0's lab control server (e2e/xen/dom0/labctl_dom0.py): run a command, read a file, pass
  a command to a domU's own labctl through xenstore;
- dom0's libvirtd, as `xen+tcp://127.0.0.1:PORT/system` (the libxl driver);
- the metrics of the balloond running in dom0 (its loopback port, tunnelled by labctl).

QEMU's command line names the lab's cache folder (the images live there), so e2e.procs
recognises it as ours; it is stopped by pid at teardown, whatever ends the session.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import libvirt

from e2e import RUN, procs
from e2e.daemon import free_port
from e2e.guests import LabClient
from e2e.wait import wait_for
from e2e.xen.image import XenImages

XEN_RUN = RUN / "xen"
DOM0_READY = re.compile(r"balloond-xen: dom0 ready uptime=([0-9.]+)")
MEMORY_MIB = 3072  # the 3 GiB; dom0 gets DOM0_MIB of it
DOM0_MIB = 1024  # the toolstack, libvirtd, balloond, and save images in RAM
# xen-lab.md: libvirt's libxl driver needs a CPU model it can decode; Nehalem needs no Xen
# options. bootscrub=0: Xen need not scrub 3 GiB of fresh TCG memory before starting dom0.
CPU = "Nehalem"
XEN_CMDLINE = (
    f"console=com1 com1=115200,8n1 dom0_mem={DOM0_MIB}M,max:{DOM0_MIB}M "
    "loglvl=all guest_loglvl=all bootscrub=0"
)
DOM0_CMDLINE = "console=hvc0 earlyprintk=xen"


class Dom0Error(RuntimeError):
    """A command in dom0 failed (its exit status and output are in the message)."""


class XenHost:
    def __init__(self, images: XenImages, folder: Path = XEN_RUN) -> None:
        self.images = images
        self.dir = folder
        self.serial = folder / "serial.log"
        self.ports = {"labctl": free_port(), "libvirt": free_port(), "metrics": free_port()}
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.boot_seconds: float | None = None
        self.dom0_uptime: float | None = None
        self._lab: LabClient | None = None
        self._conn: libvirt.virConnect | None = None

    @property
    def uri(self) -> str:
        return f"xen+tcp://127.0.0.1:{self.ports['libvirt']}/system"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics']}/metrics"

    # -- lifecycle -------------------------------------------------------------------------
    def argv(self) -> list[str]:
        fwd = ",".join(
            f"hostfwd=tcp:127.0.0.1:{self.ports[name]}-10.0.2.15:{inside}"
            for name, inside in (("labctl", 7070), ("libvirt", 16509), ("metrics", 9878))
        )
        img = self.images
        return [
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-cpu",
            CPU,
            "-m",
            str(MEMORY_MIB),
            "-smp",
            "2",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-serial",
            f"file:{self.serial}",
            "-netdev",
            f"user,id=n0,{fwd}",
            "-device",
            "e1000,netdev=n0",
            "-kernel",
            str(img.xen),
            "-append",
            XEN_CMDLINE,
            "-initrd",
            f"{img.kernel} {DOM0_CMDLINE},{img.dom0}",
        ]

    def start(self, timeout: float = 240.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.serial.unlink(missing_ok=True)
        self.started_at = time.monotonic()
        self.proc = procs.spawn(self.argv(), self.dir / "qemu.log")
        procs.CLEANUP.push("xen host (qemu)", self.stop)
        match = wait_for(self._booted, timeout, "Xen's dom0 ready line on the serial console")
        self.boot_seconds = time.monotonic() - self.started_at
        self.dom0_uptime = float(match.group(1))
        wait_for(lambda: self.call("ping", timeout=5.0), 60, "dom0's lab control server")
        wait_for(self._libvirt_answers, 60, f"dom0's libvirtd on {self.uri}")

    def _booted(self) -> re.Match[str] | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"QEMU exited {self.proc.returncode}: {self.tail_serial(30)}\n"
                f"{_tail(self.dir / 'qemu.log')}"
            )
        return DOM0_READY.search(self.serial_text())

    def _libvirt_answers(self) -> bool:
        try:
            return self.conn().getType() == "Xen"
        except libvirt.libvirtError:
            self._conn = None
            return False

    def stop(self) -> None:
        if self._lab is not None:
            self._lab.close()
            self._lab = None
        if self._conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self._conn.close()
            self._conn = None
        procs.stop(self.proc)  # the whole Xen host: its domUs go with it
        self.proc = None

    # -- dom0 --------------------------------------------------------------------------------
    def conn(self) -> libvirt.virConnect:
        if self._conn is None or not self._conn.isAlive():
            self._conn = libvirt.open(self.uri)
        return self._conn

    def call(self, cmd: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        """One lab command in dom0 (reconnecting if the link dropped)."""
        if self._lab is None:
            self._lab = LabClient(("127.0.0.1", self.ports["labctl"]))
        try:
            return self._lab.call(cmd, timeout=timeout, **args)
        except OSError:
            self._lab = None
            raise

    def run(self, *argv: str, timeout: float = 60.0, check: bool = True) -> dict[str, Any]:
        """Run a command in dom0: {"rc", "stdout", "stderr"}."""
        done = self.call("run", timeout=timeout + 5, argv=list(argv), timeout_s=timeout)
        if check and done["rc"] != 0:
            raise Dom0Error(
                f"dom0: {' '.join(argv)} exited {done['rc']}: {done['stderr'] or done['stdout']}"
            )
        return done

    def sh(self, script: str, timeout: float = 60.0, check: bool = True) -> str:
        return str(self.run("sh", "-c", script, timeout=timeout, check=check)["stdout"])

    def read(self, path: str, tail: int | None = None) -> str:
        args: dict[str, Any] = {"path": path}
        if tail:
            args["tail"] = tail
        return str(self.call("read", **args)["text"])

    def write(self, path: str, text: str) -> None:
        self.call("write", path=path, text=text)

    def xenstore_read(self, path: str) -> str | None:
        done = self.run("xenstore-read", "-R", path, check=False)
        return None if done["rc"] != 0 else str(done["stdout"])

    # -- logs ------------------------------------------------------------------------------
    def serial_text(self) -> str:
        try:
            return self.serial.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail_serial(self, lines: int = 60) -> str:
        return "\n".join(self.serial_text().splitlines()[-lines:])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"
