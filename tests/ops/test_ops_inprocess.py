"""balloonctl on a host that lives inside the daemon's process (issue 16, defect 12).

A simulated host (or libvirt's test driver) exists once per process: `balloonctl balloon`
against a daemon on sim:// used to change balloonctl's own copy, print a hold, exit 0, and
have the daemon count an operation that never happened where it acts."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from balloond.backend.simulated import SimulatedHost, open_simulated
from balloond.cli.ctl import main
from balloond.daemon.commands import handlers
from balloond.daemon.control import ControlServer
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.daemon.reload import PolicyWatcher
from balloond.policy.model import Amount
from balloond.telemetry import Telemetry
from balloond.units import GiB
from tests.support.daemon import run_ticks

URI = "sim://default?clock=manual"


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bo-inproc-"))  # short: unix socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def running(folder: Path) -> Iterator[tuple[Daemon, SimulatedHost, str]]:
    host = open_simulated(URI)
    telemetry = Telemetry()
    policies = PolicyWatcher(None, telemetry)
    settings = LoopSettings(reserve=Amount(size=GiB))
    daemon = Daemon(lambda: host, settings, policies, uri=URI, clock=host.now, telemetry=telemetry)
    run_ticks(daemon, host, 1)
    socket = folder / "control.sock"
    server = ControlServer(socket, handlers(daemon, dict))
    (folder / "policies").mkdir()
    config = folder / "balloond.yaml"
    config.write_text(
        f"uri: '{URI}'\ncontrol_socket: {socket}\npolicy_dir: {folder / 'policies'}\n"
    )
    try:
        yield daemon, host, str(config)
    finally:
        server.close()
        daemon.close()


def _web(host: SimulatedHost) -> tuple[int, int | None]:
    web = next(d for d in host.domains() if d.name == "web")
    hold = host.holds().get(web.uuid)
    return web.current, None if hold is None else hold.target


def test_balloon_is_done_by_the_daemon_that_holds_the_host(
    running: tuple[Daemon, SimulatedHost, str], capsys: pytest.CaptureFixture[str]
) -> None:
    daemon, host, config = running
    assert main(["balloon", "web", "3G", "--for", "1h", "--config", config]) == 0
    assert "web: balloon 2 GiB -> 3 GiB" in capsys.readouterr().out
    assert _web(host)[1] == 3 * GiB, "the daemon's own host has the pin"
    run_ticks(daemon, host, 2)  # the simulated balloon moves as simulated time passes
    assert _web(host) == (3 * GiB, 3 * GiB)
    assert [hold.target for hold in daemon.holds().values()] == [3 * GiB]
    assert daemon.telemetry().operations[("balloon", "ok")] == 1


def test_the_daemon_refuses_what_balloonctl_would_have_refused(
    running: tuple[Daemon, SimulatedHost, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, host, config = running
    assert main(["balloon", "web", "100", "--config", config]) == 3  # below its floor
    assert "below its floor" in capsys.readouterr().err
    assert main(["balloon", "web", "64G", "--config", config]) == 3
    assert "above its maxmem" in capsys.readouterr().err
    assert main(["balloon", "nosuch", "1G", "--config", config]) == 1
    assert _web(host) == (2 * GiB, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["maxmem", "web", "8G"],
        ["save", "web", "IMAGE"],
        ["restore", "IMAGE"],
        ["migrate", "web", "sim://elsewhere"],
    ],
)
def test_what_the_daemon_cannot_do_is_refused_not_done_elsewhere(
    running: tuple[Daemon, SimulatedHost, str], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    daemon, host, config = running
    image = Path(config).with_name("web.img")
    argv = [str(image) if arg == "IMAGE" else arg for arg in argv]
    assert main([*argv, "--config", config]) == 3
    err = capsys.readouterr().err
    assert f"{URI} lives inside balloond (pid" in err and "cannot" in err
    assert _web(host) == (2 * GiB, None)
    assert not image.exists()
    refused = {op for (op, result) in daemon.telemetry().operations if result == "refused"}
    assert refused == {argv[0]}


def test_without_a_daemon_balloonctl_works_on_its_own_copy(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = folder / "balloond.yaml"
    config.write_text(f"uri: '{URI}'\ncontrol_socket: {folder / 'none.sock'}\npolicy_dir: /x\n")
    assert main(["balloon", "web", "1536", "--config", str(config)]) == 0
    assert "2 GiB -> 1.5 GiB" in capsys.readouterr().out
