"""The nested Xen host itself: Xen boots, dom0 runs the toolstack and libvirtd's libxl
driver on xen:///system, and PV domUs boot with the guest agent (before any scenario)."""

from __future__ import annotations

import pytest

pytest.importorskip("libvirt", reason="the Xen lab needs libvirt-python")

from e2e.guests import MiB
from e2e.xen.guests import XenGuest
from e2e.xen.lab import XenLab


def test_dom0_runs_xen_and_libvirt(xenlab: XenLab) -> None:
    xen = xenlab.xen
    info = xen.sh("xl info")
    assert "xen_version            : 4.17" in info
    assert xen.conn().getType() == "Xen"
    dom0 = xen.conn().lookupByID(0)
    assert dom0.name() == "Domain-0"


def test_domus_boot_with_their_balloon_at_maxmem(pair: tuple[XenGuest, XenGuest]) -> None:
    for guest in pair:
        assert guest.boot_seconds is not None
        assert guest.maxmem() == 512 * MiB
        # The guest's own view of its balloon target (sysfs, KiB): balloond may already be
        # moving it (scenario 2 follows it exactly), but never outside the domain's range.
        assert 192 * MiB <= guest.target_kb() * 1024 <= guest.maxmem()
        assert 128 * MiB < guest.meminfo()["MemTotal"] <= guest.current()
