"""`balloond-guest target`: footprint, and requests through each Xen file or the host."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from balloond_guest import cli, control, xen
from balloond_guest.agent import Agent, Settings
from balloond_guest.sizes import MIB

from tests.support.agent import FIXTURES, XEN_TREES


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", sorted(XEN_TREES))
def test_target_writes_each_xen_file_in_its_own_unit(
    name: str, tree: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = tree(name)
    path, unit = XEN_TREES[name]
    code, out, _ = run(capsys, "target", "512M", "--root", root)
    assert code == 0
    assert path in out
    written = Path(root + path).read_text().strip()
    assert int(written) * unit == 512 * MIB
    found = xen.read_target(root)
    assert found is not None and found[0] == path
    if path != xen.PROC_BALLOON:  # /proc/xen/balloon reads back as a report, not what we wrote
        assert found[1] == 512 * MIB


@pytest.mark.parametrize("name", sorted(XEN_TREES))
def test_target_without_size_prints_the_footprint(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "target", "--root", str(FIXTURES / name))
    assert code == 0
    assert "footprint:" in out and "demand:" in out
    assert "xen target:" in out and XEN_TREES[name][0] in out


def test_proc_xen_balloon_reads_target_and_current_allocation() -> None:
    path, target, current = xen.read_target(str(FIXTURES / "xenlinux-2.6.18")) or (None, 0, 0)
    assert path == xen.PROC_BALLOON
    assert target == current == 1024 * MIB


def test_memory_target_accepts_memparse_suffixes(tmp_path: Path) -> None:
    (tmp_path / "proc/xen").mkdir(parents=True)
    (tmp_path / "proc/xen/memory_target").write_text("256M\n")
    assert xen.read_target(str(tmp_path)) == (xen.PROC_MEMORY_TARGET, 256 * MIB, None)


def test_target_below_the_floor_is_refused_and_nothing_written(
    tree: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = tree("linux-4.19-xen-pv")
    before = Path(root, "sys/devices/system/xen_memory/xen_memory0/target_kb").read_text()
    code, _, err = run(capsys, "target", "64M", "--root", root)
    assert code == 2
    assert "below the safe floor 128 MiB" in err
    assert Path(root, "sys/devices/system/xen_memory/xen_memory0/target_kb").read_text() == before


def test_bad_size_is_an_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "target", "lots", "--root", str(FIXTURES / "xenlinux-2.6.18"))
    assert code == 1
    assert "expected a size" in err


def _listener(path: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    return server


def test_kvm_target_without_agent_sends_one_report_to_the_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = str(tmp_path / "host.sock")
    with _listener(host) as server:
        code, out, _ = run(
            capsys,
            "target",
            "768M",
            "--root",
            str(FIXTURES / "linux-6.1-kvm-psi"),
            "--transport",
            "unix:" + host,
            "--control",
            str(tmp_path / "none.sock"),
        )
        conn, _ = server.accept()
        with conn:
            line = conn.makefile("rb").readline()
    assert code == 0 and "768 MiB" in out
    message = json.loads(line)
    assert message["type"] == "report" and message["request"] == 768 * MIB
    assert message["trigger"] == "request"


def test_kvm_target_goes_through_the_running_agents_control_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "ctl.sock")
    server = control.ControlServer(path)
    agent = Agent(Settings(root=str(FIXTURES / "linux-6.1-kvm-psi")), transport=None)
    try:
        assert os.stat(path).st_mode & 0o077 == 0  # only root may change the guest's memory
        thread = threading.Thread(
            target=lambda: server.sock.setblocking(True) or server.serve(agent)
        )
        thread.start()
        code, out, _ = run(
            capsys, "target", "1G", "--root", str(FIXTURES / "linux-6.1-kvm-psi"), "--control", path
        )
        thread.join(10)
    finally:
        server.close()
    assert code == 0 and "ok" in out
    assert agent.request == 1024 * MIB
    assert agent.tick("request")["request"] == 1024 * MIB


def test_kvm_target_with_no_channel_to_the_host_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No agent running and no virtio port or xenstore: it printed the report to stdout and
    exited 0, as if the host had been asked."""
    root = str(FIXTURES / "linux-5.4-kvm-nopsi")  # a KVM guest without the channel attached
    code, out, err = run(
        capsys, "target", "768M", "--root", root, "--control", str(tmp_path / "none.sock")
    )
    assert code == 1 and out == ""
    assert "cannot reach the host" in err and "768 MiB" in err
    code, out, _ = run(
        capsys,
        "target",
        "768M",
        "--root",
        root,
        "--transport",
        "stdout",
        "--control",
        str(tmp_path / "none.sock"),
    )
    assert code == 0 and json.loads(out)["request"] == 768 * MIB  # asked for: printed


def _serving(path: str, agent: Agent) -> threading.Thread:
    server = control.ControlServer(path)

    def once() -> None:
        server.sock.setblocking(True)
        try:
            server.serve(agent)
        finally:
            server.close()

    thread = threading.Thread(target=once)
    thread.start()
    return thread


def test_xen_target_is_reported_as_the_guests_request_by_the_running_agent(
    tree: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On Xen the guest moves its own balloon, but dom0 owns memory/target too: unless the
    agent reports the size as this guest's request, balloond sets its own target back at the
    next tick (seen in the Xen lab, tests/xen)."""
    root = tree("linux-4.19-xen-pv")
    agent = Agent(Settings(root=root), transport=None)
    path = str(tmp_path / "ctl.sock")
    thread = _serving(path, agent)
    code, out, _ = run(capsys, "target", "512M", "--root", root, "--control", path)
    thread.join(10)
    assert code == 0 and "written to" in out and "request" in out
    assert xen.read_target(root) == (xen.SYSFS_TARGET_KB, 512 * MIB, None)
    assert agent.tick("request")["request"] == 512 * MIB
    thread = _serving(path, agent)  # `target auto` hands the choice back to the host
    code, out, _ = run(capsys, "target", "auto", "--root", root, "--control", path)
    thread.join(10)
    assert code == 0 and "no longer" in out
    assert "request" not in agent.tick()


def test_xen_target_without_an_agent_still_moves_the_balloon_and_says_so(
    tree: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tree("linux-4.19-xen-pv")
    none = str(tmp_path / "none.sock")
    code, out, _ = run(capsys, "target", "512M", "--root", root, "--control", none)
    assert code == 0 and "no running agent" in out
    assert xen.read_target(root) == (xen.SYSFS_TARGET_KB, 512 * MIB, None)
    code, _, err = run(capsys, "target", "auto", "--root", root, "--control", none)
    assert code == 2 and "needs a running agent" in err
