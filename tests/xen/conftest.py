"""Fixtures of the Xen lab (e2e/xen/): one nested Xen host per session, domUs per module.

Every test here is marked `realvm` and `xen` (`make e2e-xen` runs them alone) and runs after
the rest of the suite: the lab takes the machine-wide lab lock, which the KVM lab
(tests/e2e) releases after its last test. They skip, saying why, only where Xen cannot run
(not root, no QEMU).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the e2e package (repo root)

if TYPE_CHECKING:
    from e2e.xen.daemon import Dom0Balloond
    from e2e.xen.guests import XenGuest
    from e2e.xen.lab import XenLab

_LAB: XenLab | None = None
HERE = Path(__file__).parent


def _ours(item: pytest.Item) -> bool:
    return HERE in Path(str(item.fspath)).parents


MODULES = ("test_xen_host", "test_xen_daemon", "test_xen_ops", "test_xen_hostile")


def _order(item: pytest.Item) -> tuple[bool, int]:
    if not _ours(item):
        return (False, 0)
    stem = Path(str(item.fspath)).stem
    return (True, MODULES.index(stem) if stem in MODULES else len(MODULES))


# The first test sets the lab up: it may wait for the machine's lab lock (another checkout's
# lab or benchmark), then build the images and boot Xen. Its time limit covers that wait.
FIRST_TEST_TIMEOUT = 3600


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # around `-m`/`-k` deselection
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    for item in items:
        if _ours(item):
            item.add_marker(pytest.mark.realvm)
            item.add_marker(pytest.mark.xen)
    # After everything else (the KVM lab included), the host first, the hostile domU last.
    items.sort(key=_order)
    yield
    first = next((item for item in items if _ours(item)), None)
    if first is not None:
        first.add_marker(pytest.mark.timeout(FIRST_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def xenlab() -> Iterator[XenLab]:
    global _LAB
    pytest.importorskip("libvirt", reason="the Xen lab needs libvirt-python")
    from e2e.xen import lab as lablib

    reason = lablib.missing()
    if reason:
        pytest.skip(reason)
    the_lab = lablib.XenLab()
    _LAB = the_lab
    try:
        the_lab.start()
        yield the_lab
    finally:
        errors = the_lab.stop()
        _LAB = None
        if errors or the_lab.leftovers:
            raise AssertionError(
                f"Xen lab teardown: errors {errors}, processes left behind (now killed) "
                f"{the_lab.leftovers}"
            )


@pytest.fixture(scope="session")
def pair(xenlab: XenLab) -> Iterator[tuple[XenGuest, XenGuest]]:
    """Two PV domUs of 512 MiB (maxmem and start) for the scenarios: `a` stays idle, `b`
    gets the workload. Created one after the other, booting together."""
    a = xenlab.create("a", wait=False)
    b = xenlab.create("b", wait=False)
    for guest in (a, b):
        xenlab.report.record("domU create -> ready", guest.name, guest.wait_booted())
    yield a, b
    for guest in (a, b):
        xenlab.destroy(guest)


@pytest.fixture(scope="session")
def daemon(xenlab: XenLab) -> Dom0Balloond:
    """The balloond dom0's init started (shipped config and policies, xen:///system)."""
    from e2e.xen.daemon import Dom0Balloond

    d = Dom0Balloond(xenlab.xen)
    d.wait_ready()
    return d


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if not (rep.failed and _LAB is not None and _LAB.host is not None and _ours(item)):
        return
    host = _LAB.host
    rep.sections.append(("Xen serial console (last 80 lines)", host.tail_serial(80)))
    for guest in _LAB.guests:
        text = _tail(guest.console_text(), 40)
        rep.sections.append((f"console of {guest.name} (last 40 lines)", text))
    for what, path in (
        ("balloond in dom0", "/var/log/balloond.log"),
        ("libvirtd in dom0", "/var/log/libvirt/libvirtd.log"),
        ("dom0 labctl", "/var/log/labctl.log"),
    ):
        try:
            text = host.read(path, tail=6000)
        except Exception as exc:  # dom0 may be the thing that failed
            text = f"(cannot read {path}: {exc})"
        rep.sections.append((f"{what} (last 40 lines)", _tail(text, 40)))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lablib = sys.modules.get("e2e.xen.lab")
    report = getattr(lablib, "LAST_REPORT", None)
    if report is None or not report.figures:
        return
    terminalreporter.section("Xen lab figures")
    for line in report.lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {report.path})")
