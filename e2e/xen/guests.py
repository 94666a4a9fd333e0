"""PV domUs in the nested Xen host, created through dom0's libvirtd (the libxl driver), as
balloond and balloonctl see them.

Each domU boots Debian's kernel with the lab initramfs: busybox init, a counter on its
console (hvc0, logged by xenconsoled in dom0), the guest agent reporting through xenstore,
and labctl_domu.py answering the test's commands through xenstore.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from string import Template
from typing import Any

import libvirt

from e2e.guests import COUNTER, READY, MiB
from e2e.wait import wait_for
from e2e.xen.host import XenHost

NAME_PREFIX = "bdxen-"
CONSOLE_DIR = "/var/log/xen/console"
DOMAIN_XML = Template("""\
<domain type='xen'>
  <name>${name}</name>
  <memory unit='KiB'>${maxmem_kib}</memory>
  <currentMemory unit='KiB'>${current_kib}</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='xenpv'>linux</type>
    <kernel>${kernel}</kernel>
    <initrd>${initrd}</initrd>
    <cmdline>console=hvc0 quiet rdinit=/init${extra}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <console type='pty'><target type='xen' port='0'/></console>
  </devices>
</domain>
""")


@dataclass
class XenGuest:
    name: str
    host: XenHost
    created_at: float
    create_seconds: float = 0.0
    boot_seconds: float | None = None

    def dom(self) -> libvirt.virDomain:
        return self.host.conn().lookupByName(self.name)

    @property
    def domid(self) -> int:
        return int(self.dom().ID())

    def current(self) -> int:
        """Balloon size now (bytes), as libvirt (libxl) sees it."""
        return int(self.dom().info()[2]) * 1024

    def maxmem(self) -> int:
        return int(self.dom().info()[1]) * 1024

    # -- inside the domU -----------------------------------------------------------------------
    def call(self, cmd: str, wait: float = 20.0, **args: Any) -> dict[str, Any]:
        """A lab command run by the domU's labctl (through xenstore); its answer."""
        out = self.host.call(
            "domu", timeout=wait + 10, domid=self.domid, domu_cmd=cmd, wait=wait, **args
        )
        reply: dict[str, Any] = out["reply"]
        if not reply.get("ok"):
            raise RuntimeError(f"domU {self.name}: {cmd!r} failed: {reply.get('error')}")
        return reply

    def meminfo(self) -> dict[str, int]:
        info = self.call("meminfo")["meminfo"]
        keep = ("MemTotal", "MemFree", "MemAvailable", "Cached", "Committed_AS")
        return {k: int(info[k]) for k in keep if k in info}

    def target_kb(self) -> int:
        """The domU's own balloon target file (sysfs, KiB) as the guest reads it."""
        path = "/sys/devices/system/xen_memory/xen_memory0/target_kb"
        out = self.call("run", argv=["cat", path])
        return int(out["stdout"].strip())

    # -- console -------------------------------------------------------------------------------
    def console_text(self) -> str:
        with contextlib.suppress(Exception):
            return self.host.read(f"{CONSOLE_DIR}/guest-{self.name}.log")
        return ""

    def counter(self) -> int:
        found = COUNTER.findall(self.console_text())
        return int(found[-1]) if found else 0

    def wait_booted(self, timeout: float = 120.0) -> float:
        wait_for(
            lambda: READY.search(self.console_text()),
            timeout,
            f"domU {self.name}: ready line on its console",
            interval=0.5,
        )
        self.boot_seconds = time.monotonic() - self.created_at
        return self.boot_seconds


def create(
    host: XenHost,
    name: str,
    *,
    maxmem: int = 512 * MiB,
    current: int | None = None,
    agent: bool = True,
) -> XenGuest:
    """Create (transient) and start a PV domU; does not wait for it to boot. `agent` False:
    its guest agent does not start (lab.noagent), the test writes its reports."""
    full = name if name.startswith(NAME_PREFIX) else NAME_PREFIX + name
    with contextlib.suppress(Exception):  # a console log of an earlier domain of that name
        host.run("rm", "-f", f"{CONSOLE_DIR}/guest-{full}.log")
    xml = DOMAIN_XML.substitute(
        name=full,
        maxmem_kib=maxmem // 1024,
        current_kib=(current or maxmem) // 1024,
        kernel=host.images.domu_kernel,
        initrd=host.images.domu_initrd,
        extra="" if agent else " lab.noagent",
    )
    started = time.monotonic()
    host.conn().createXML(xml, 0)
    guest = XenGuest(full, host, created_at=started)
    guest.create_seconds = time.monotonic() - started
    return guest


def destroy(guest: XenGuest) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        guest.dom().destroy()
