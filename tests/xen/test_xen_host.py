"""The nested Xen host itself: Xen boots, dom0 runs the toolstack, libvirtd's libxl driver
answers on xen:///system, and PV domUs start and report (before any scenario)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("libvirt", reason="the Xen lab needs libvirt-python")

from e2e.xen.guests import XenGuest
from e2e.xen.lab import XenLab


@pytest.fixture(scope="module")
def a(xenlab: XenLab) -> Iterator[XenGuest]:
    with xenlab.guest("a") as guest:
        yield guest


def test_dom0_runs_xen_and_libvirt(xenlab: XenLab) -> None:
    xen = xenlab.xen
    info = xen.sh("xl info")
    assert "xen_version            : 4.17" in info
    assert xen.conn().getType() == "Xen"
    names = [d.name() for d in xen.conn().listAllDomains()]
    assert "Domain-0" in names


def test_domu_boots_and_counts(a: XenGuest) -> None:
    assert a.boot_seconds is not None
    info = a.meminfo()
    assert info["MemTotal"] > 256 << 20
    assert a.target_kb() == 512 * 1024
