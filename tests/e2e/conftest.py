"""Fixtures of the real-VM lab (e2e/): one lab per session, guests per module or test.

Every test here is marked `realvm`; `make e2e` runs them alone. They skip, saying what is
missing, when the machine cannot run real guests (not root, no libvirtd, no QEMU).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from e2e.lab import Lab

_LAB: Lab | None = None
# libvirtd errors seen at every start on a build machine (no dnsmasq, D-Bus, DMI, /dev/mem).
HARMLESS = re.compile(r"dnsmasq|GetSystemBus|DMIData|dmidecode")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realvm)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    global _LAB
    pytest.importorskip("libvirt", reason="the real-VM lab needs libvirt-python")
    from e2e import lab as lablib

    reason = lablib.missing()
    if reason:
        pytest.skip(reason)
    the_lab = lablib.Lab()
    _LAB = the_lab
    try:
        the_lab.start()
        yield the_lab
    finally:
        errors = _stop_lab()
        leftovers = the_lab.leftovers
        if errors or leftovers:
            raise AssertionError(
                f"lab teardown: errors {errors}, processes left behind (now killed) {leftovers}"
            )


_STOP_ERRORS: list[str] = []


def _stop_lab() -> list[str]:
    """Stop the lab once (after its last test, or at session end) and release the machine's
    lab lock: the Xen lab (tests/xen) runs after this one in the same session."""
    global _LAB
    if _LAB is not None:
        lab, _LAB = _LAB, None
        _STOP_ERRORS.extend(lab.stop())
    return _STOP_ERRORS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield  # the item's own and its module's fixtures first (guests are destroyed there)
    here = Path(__file__).parent
    if _LAB is not None and (nextitem is None or here not in Path(str(nextitem.fspath)).parents):
        _stop_lab()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _LAB is not None:
        for guest in _LAB.guests:
            text = guest.console_text()
            rep.sections.append(
                (f"console of {guest.name} (last 60 lines)", "\n".join(text.splitlines()[-60:]))
            )
        for daemon in _LAB.daemons:
            rep.sections.append((f"balloond on {daemon.host.name} (last 40 lines)", daemon.tail()))
        for host in _LAB.hosts.values():
            log = host.dir / "libvirtd.log"
            if log.exists():
                lines = log.read_text(errors="replace").splitlines()
                errors = [ln for ln in lines if " error : " in ln and not HARMLESS.search(ln)]
                errors = errors[-10:]
                rep.sections.append((f"libvirtd {host.name}: last errors", "\n".join(errors)))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lablib = sys.modules.get("e2e.lab")
    report = getattr(lablib, "LAST_REPORT", None)
    if report is None or not report.figures:
        return
    terminalreporter.section("real-VM lab figures")
    for line in report.lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {report.path})")
