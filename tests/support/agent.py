"""Paths of the guest agent's fixture /proc trees (tests/agent/fixtures)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "agent" / "fixtures"
TREES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
XEN_TREES = {
    "linux-4.19-xen-pv": ("/sys/devices/system/xen_memory/xen_memory0/target_kb", 1024),
    "xenlinux-2.6.18": ("/proc/xen/balloon", 1),
    "xenlinux-2.6.9-memory-target": ("/proc/xen/memory_target", 1),
}
