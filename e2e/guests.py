"""Lab guests: boot one from the template, read its console, talk to it over the lab channel.

A guest has two virtio-serial ports: `org.balloond.agent.0` belongs to the guest agent (the
daemon's AgentHub connects to it), `org.balloond.lab.0` to e2e/guest/labctl.py, through which
the test reads /proc/meminfo inside the guest and starts or stops a memory workload. The
serial console goes to a file under e2e/.cache/run/console/ that failing tests print.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import libvirt

from balloond.units import MiB, bytes_to_kib, kib_to_bytes
from e2e import NAME_PREFIX, RUN
from e2e.hosts import LibvirtHost
from e2e.image import GuestImage
from e2e.wait import wait_for

TEMPLATE = Path(__file__).resolve().parent / "templates" / "domain.xml"
AGENT_PORT = "org.balloond.agent.0"
LAB_PORT = "org.balloond.lab.0"
READY = re.compile(r"balloond-e2e: ready uptime=([0-9.]+)")
COUNTER = re.compile(r"balloond-e2e counter (\d+)")


def emulator() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        raise FileNotFoundError("qemu-system-x86_64 not found in PATH")
    return path


def domain_xml(
    name: str,
    image: GuestImage,
    console: Path,
    *,
    maxmem: int,
    current: int,
    virt_type: str = "qemu",
) -> str:
    # TCG's translation cache defaults to 1 GiB per guest and fills as the guest runs new
    # code: host memory that moves under the daemon's feet. 64 MiB is plenty for this guest.
    features = (
        "<features><tcg><tb-cache unit='MiB'>64</tb-cache></tcg></features>"
        if virt_type == "qemu"
        else ""
    )
    return Template(TEMPLATE.read_text()).substitute(
        name=name,
        virt_type=virt_type,
        features=features,
        maxmem_kib=bytes_to_kib(maxmem),
        current_kib=bytes_to_kib(current),
        kernel=image.kernel,
        initrd=image.initrd,
        emulator=emulator(),
        console=console,
    )


class LabClient:
    """JSON-lines requests to labctl.py in the guest, over the host end of its port (a unix
    socket path), or to the Xen lab's dom0 over TCP (a (host, port) address)."""

    def __init__(self, path: Path | tuple[str, int]) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._buf = b""
        self._seq = 0

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._buf = b""

    def call(self, cmd: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        self._seq += 1
        msg = {"id": self._seq, "cmd": cmd, **args}
        try:
            if self._sock is None:
                family = socket.AF_UNIX if isinstance(self.path, Path) else socket.AF_INET
                self._sock = socket.socket(family, socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                self._sock.connect(str(self.path) if isinstance(self.path, Path) else self.path)
            self._sock.settimeout(timeout)
            self._sock.sendall((json.dumps(msg) + "\n").encode())
            while True:
                while b"\n" not in self._buf:
                    chunk = self._sock.recv(65536)
                    if not chunk:
                        raise ConnectionError(f"lab channel {self.path} closed")
                    self._buf += chunk
                line, self._buf = self._buf.split(b"\n", 1)
                reply: dict[str, Any] = json.loads(line)
                if reply.get("id") == self._seq:
                    break
        except (OSError, ValueError):
            self.close()
            raise
        if not reply.get("ok"):
            raise RuntimeError(f"guest command {cmd!r} failed: {reply.get('error')}")
        return reply


@dataclass
class Guest:
    name: str
    host: LibvirtHost
    image: GuestImage
    console: Path
    created_at: float = 0.0
    boot_seconds: float | None = None
    _lab: LabClient | None = field(default=None, repr=False)

    # -- libvirt -------------------------------------------------------------------------------
    def dom(self) -> libvirt.virDomain:
        return self.host.conn().lookupByName(self.name)

    def current(self) -> int:
        """Balloon size now (bytes), as libvirt sees it."""
        return kib_to_bytes(self.dom().info()[2])

    def memory_stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.dom().memoryStats().items()}

    def set_memory(self, size: int) -> None:
        self.dom().setMemoryFlags(bytes_to_kib(size), libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def channel_path(self, port: str) -> Path:
        """Host path of the unix socket behind the guest's virtio-serial `port`."""
        root = ET.fromstring(self.dom().XMLDesc(0))
        for chan in root.iterfind("./devices/channel"):
            target = chan.find("target")
            source = chan.find("source")
            if target is not None and target.get("name") == port and source is not None:
                return self.host.path(source.get("path", ""))
        raise KeyError(f"guest {self.name}: no channel {port}")

    # -- inside the guest ----------------------------------------------------------------------
    def lab(self) -> LabClient:
        path = self.channel_path(LAB_PORT)
        if self._lab is None or self._lab.path != path:
            if self._lab is not None:
                self._lab.close()
            self._lab = LabClient(path)
        return self._lab

    def call(self, cmd: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        """A lab command, retried until the guest answers (it may still be booting, or its
        port may just have moved to another host)."""
        return wait_for(
            lambda: self.lab().call(cmd, timeout=5.0, **args),
            timeout,
            f"guest {self.name}: answer to {cmd!r}",
            interval=0.3,
        )

    def meminfo(self) -> dict[str, int]:
        """/proc/meminfo inside the guest, in bytes."""
        info: dict[str, int] = self.call("meminfo")["meminfo"]
        return info

    def close(self) -> None:
        if self._lab is not None:
            self._lab.close()

    # -- console -------------------------------------------------------------------------------
    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def console_size(self) -> int:
        try:
            return self.console.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_console(
        self, pattern: re.Pattern[str], timeout: float, since: int = 0
    ) -> re.Match[str]:
        def seen() -> re.Match[str] | None:
            return pattern.search(self.console_text()[since:])

        return wait_for(seen, timeout, f"guest {self.name}: console line /{pattern.pattern}/")

    def counter(self) -> int:
        """The last value the guest's counter process wrote to the console (0 if none)."""
        found = COUNTER.findall(self.console_text())
        return int(found[-1]) if found else 0

    def wait_booted(self, timeout: float = 180.0) -> float:
        self.wait_console(READY, timeout)
        self.boot_seconds = time.monotonic() - self.created_at
        return self.boot_seconds


def boot(
    host: LibvirtHost,
    image: GuestImage,
    name: str,
    *,
    maxmem: int = 512 * MiB,
    current: int | None = None,
    virt_type: str = "qemu",
) -> Guest:
    """Create (transient) and start a lab guest on `host`; does not wait for it to boot."""
    full = name if name.startswith(NAME_PREFIX) else NAME_PREFIX + name
    console = RUN / "console" / f"{full}.log"
    console.parent.mkdir(parents=True, exist_ok=True)
    # A libvirtd that is not ours may run QEMU as libvirt-qemu: let it write the console.
    console.parent.chmod(0o1777)
    console.unlink(missing_ok=True)
    xml = domain_xml(
        full, image, console, maxmem=maxmem, current=current or maxmem, virt_type=virt_type
    )
    guest = Guest(full, host, image, console, created_at=time.monotonic())
    host.conn().createXML(xml, 0)
    return guest


def destroy(guest: Guest) -> None:
    guest.close()
    with contextlib.suppress(libvirt.libvirtError):
        guest.dom().destroy()
