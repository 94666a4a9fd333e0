"""The Xen balloon target file a guest can write, whichever this kernel has.

Three generations, newest first, each with its own unit:
- /sys/devices/system/xen_memory/xen_memory0/target_kb (pvops kernels, 2.6.26+): KiB,
  per the kernel's Documentation/ABI/stable/sysfs-devices-system-xen_memory.
- /proc/xen/balloon (XenLinux 2.0.x to 2.6.18-xen): write a size in bytes, parsed with the
  kernel's memparse so K/M/G suffixes work (Keir Fraser, xen-devel, Dec 2004: "To set memory
  target: echo <memsz> >/proc/xen/balloon"); reading gives "Current allocation: N kB" lines.
- /proc/xen/memory_target (the classic XenLinux interface the old Xen manual names): we write
  a plain decimal byte count, which a memparse reader takes as bytes. We could not find the
  original driver source to confirm its unit; docs/protocol.md says so.
"""

from __future__ import annotations

import re

from balloond_guest import procfs
from balloond_guest.sizes import KIB

SYSFS_TARGET_KB = "/sys/devices/system/xen_memory/xen_memory0/target_kb"
PROC_BALLOON = "/proc/xen/balloon"
PROC_MEMORY_TARGET = "/proc/xen/memory_target"
TARGET_FILES = (SYSFS_TARGET_KB, PROC_BALLOON, PROC_MEMORY_TARGET)

_BALLOON_LINE = re.compile(
    r"^\s*(Current allocation|Requested target)\s*:\s*(\d+)\s*kB", re.I | re.M
)
_MEMPARSE = re.compile(r"^\s*(\d+)\s*([KMG]?)", re.I)


def is_xen(root: str) -> bool:
    """Xen guest: the hypervisor says so in sysfs, or the XenLinux /proc/xen exists."""
    kind = procfs.read_text(root, "/sys/hypervisor/type")
    if kind is not None and kind.strip() == "xen":
        return True
    return any(procfs.read_text(root, path) is not None for path in TARGET_FILES)


def target_file(root: str) -> str | None:
    """The path (without root) of the first target file that exists, or None."""
    for path in TARGET_FILES:
        if procfs.read_text(root, path) is not None:
            return path
    return None


def read_target(root: str) -> tuple[str, int | None, int | None] | None:
    """(path, current target in bytes, current allocation in bytes or None), or None."""
    path = target_file(root)
    if path is None:
        return None
    text = procfs.read_text(root, path) or ""
    if path == SYSFS_TARGET_KB:
        kib = _int(text)
        return path, kib * KIB if kib is not None else None, None
    if path == PROC_BALLOON:
        lines = {m.group(1).lower(): int(m.group(2)) * KIB for m in _BALLOON_LINE.finditer(text)}
        return path, lines.get("requested target"), lines.get("current allocation")
    return path, _memparse(text), None


def write_target(root: str, size: int) -> str:
    """Write `size` bytes to the target file in its own unit; return the path written.
    Raises OSError when no file exists (not Xen) or the kernel refuses the write."""
    path = target_file(root)
    if path is None:
        raise OSError("no Xen balloon target file under %s" % root)
    text = "%d\n" % (size // KIB) if path == SYSFS_TARGET_KB else "%d\n" % size
    with open(procfs.path_under(root, path), "w") as handle:
        handle.write(text)
    return path


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _memparse(text: str) -> int | None:
    match = _MEMPARSE.match(text)
    if match is None:
        return None
    factor = {"": 1, "k": KIB, "m": KIB**2, "g": KIB**3}[match.group(2).lower()]
    return int(match.group(1)) * factor
