"""Fixtures for the guest agent tests: copies of the /proc trees, and a fake host socket."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TREES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
XEN_TREES = {
    "linux-4.19-xen-pv": ("/sys/devices/system/xen_memory/xen_memory0/target_kb", 1024),
    "xenlinux-2.6.18": ("/proc/xen/balloon", 1),
    "xenlinux-2.6.9-memory-target": ("/proc/xen/memory_target", 1),
}


@pytest.fixture
def tree(tmp_path: Path) -> Callable[[str], str]:
    """tree('linux-6.1-kvm-psi') -> a private copy's path, safe to write into."""

    def copy(name: str) -> str:
        target = tmp_path / name
        shutil.copytree(FIXTURES / name, target)
        return str(target)

    return copy
