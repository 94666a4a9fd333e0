"""Every balloonctl operation tells a running daemon how it ended (its metrics count them),
against a real ControlServer serving the daemon's own handlers; and nothing changes when no
daemon listens."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from balloond.backend.base import JobProgress
from balloond.backend.simulated import open_simulated
from balloond.cli import ctl_ops
from balloond.cli.ctl import main
from balloond.config import DaemonConfig
from balloond.daemon.assemble import compute_once
from balloond.daemon.commands import handlers
from balloond.daemon.control import ControlServer
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.errors import ConfigError, DomainNotFound, OperationFailed, Refused
from balloond.ops import OpsContext, migrate_domain
from balloond.ops.progress import ProgressLine
from balloond.ops.reporting import daemon_socket, reported, result_of
from balloond.policy.model import Amount

pytestmark = pytest.mark.libvirt

HOST_URI = f"test://{Path(__file__).parent.parent / 'contract' / 'host.xml'}"
SOURCE = "sim://opsa?guests=2&clock=manual"  # guests opsa-00000, opsa-00001
DEST = "sim://opsb?guests=1&clock=manual"


@pytest.mark.parametrize(
    ("error", "label"),
    [
        (None, "ok"),
        (Refused("no room"), "refused"),
        (ConfigError("bad DEST"), "refused"),
        (OperationFailed("libvirt said no"), "failed"),
        (DomainNotFound("gone"), "failed"),
        (OSError("disk full"), "failed"),
        (KeyboardInterrupt(), "aborted"),
    ],
)
def test_result_labels(error: BaseException | None, label: str) -> None:
    assert result_of(error) == label


def test_reported_sends_once_and_lets_the_error_through() -> None:
    sent: list[tuple[Any, ...]] = []
    ticks = iter([10.0, 12.5])

    def send(path: str, operation: str, result: str, **figures: Any) -> bool:
        sent.append((path, operation, result, figures))
        return False  # no daemon: the command must not care

    with pytest.raises(Refused), reported("/s", "save", send=send, clock=lambda: next(ticks)):
        raise Refused("exists")
    assert sent == [("/s", "save", "refused", {"duration": 2.5})]
    sent.clear()
    with reported("/s", "migrate", send=send) as outcome:
        outcome.duration, outcome.downtime = 3.0, 0.04
    assert sent == [("/s", "migrate", "ok", {"duration": 3.0, "downtime": 0.04})]
    sent.clear()
    with reported(None, "balloon", send=send):
        pass
    assert sent == []


@pytest.mark.parametrize(
    ("uri", "reported_to"),
    [(None, "/run/s"), ("qemu:///system", "/run/s"), ("qemu+tcp://other/system", None)],
)
def test_only_the_configured_daemons_host_is_reported(uri: str | None, reported_to: str) -> None:
    assert daemon_socket("qemu:///system", "/run/s", uri) == reported_to


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A unix socket path must fit in 108 bytes: pytest's tmp_path may not."""
    folder = Path(tempfile.mkdtemp(prefix="bo-ops-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a real hypervisor, where balloonctl reaches the libvirtd the daemon manages.
    Here both run in one process, each on its own copy of an in-process host, which issue
    16 routes to the daemon or refuses (tests/ops/test_ops_inprocess.py): these tests are
    about what the daemon counts, so that routing is set aside."""
    monkeypatch.setattr(ctl_ops, "daemon_host", lambda ctx: None)


def _serve(uri: str, policy_dir: Path, socket: Path) -> tuple[Daemon, ControlServer]:
    daemon = compute_once(uri, policy_dir, LoopSettings(reserve=Amount(size=0)))
    return daemon, ControlServer(socket, handlers(daemon, dict))


def _config(folder: Path, uri: str, policy_dir: Path, socket: Path) -> str:
    path = folder / "balloond.yaml"
    path.write_text(
        f"uri: '{uri}'\npolicy_dir: {policy_dir}\nreserve: 1GiB\ncontrol_socket: {socket}\n"
    )
    return str(path)


def test_every_operation_is_counted_by_the_running_daemon(
    short_dir: Path,
    policy_dir: Path,
    capsys: pytest.CaptureFixture[str],
    reachable: None,
) -> None:
    socket = short_dir / "control.sock"
    cfg = _config(short_dir, HOST_URI, policy_dir, socket)
    image = str(short_dir / "web1.img")
    daemon, server = _serve(HOST_URI, policy_dir, socket)
    try:
        runs = [
            (["balloon", "web1", "1536"], 0),
            (["mem-set", "web1", "100"], 3),  # below the floor
            (["balloon", "nope", "1G"], 1),
            (["maxmem", "web1", "6G"], 0),
            (["save", "web1", image], 0),
            (["save", "batch1", image], 3),  # exists
            (["restore", image], 3),  # the file host has no free memory
            (["migrate", "--live", "batch1", HOST_URI], 3),
            (["migrate", "batch1", "user@host/x"], 2),  # not a host name nor a URI
            (["balloon", "-c", "test:///default", "test", "3G"], 0),  # another host: not ours
        ]
        for argv, code in runs:
            assert main([*argv, "--config", cfg]) == code, (argv, capsys.readouterr().err)
        counted = daemon.telemetry().operations
    finally:
        server.close()
        daemon.close()
    assert counted == Counter(
        {
            ("balloon", "ok"): 1,
            ("balloon", "refused"): 1,
            ("balloon", "failed"): 1,
            ("maxmem", "ok"): 1,
            ("save", "ok"): 1,
            ("save", "refused"): 1,
            ("restore", "refused"): 1,
            ("migrate", "refused"): 2,
        }
    )


def test_a_migration_reports_its_duration_and_downtime(
    short_dir: Path,
    policy_dir: Path,
    capsys: pytest.CaptureFixture[str],
    reachable: None,
) -> None:
    socket = short_dir / "control.sock"
    cfg = _config(short_dir, SOURCE, policy_dir, socket)
    daemon, server = _serve(SOURCE, policy_dir, socket)
    try:
        assert main(["migrate", "--live", "opsa-00001", DEST, "--config", cfg]) == 0
        telemetry = daemon.telemetry()
    finally:
        server.close()
        daemon.close()
    assert "migrated to" in capsys.readouterr().out
    assert telemetry.operations == Counter({("migrate", "ok"): 1})
    assert telemetry.migration_downtimes == [0.05]
    assert len(telemetry.migration_durations) == 1 and telemetry.migration_durations[0] > 0


class _CtrlC(ProgressLine):
    """The operator presses Ctrl-C while the second progress figure is on screen."""

    def __call__(self, progress: JobProgress) -> None:
        if progress.processed * 2 >= progress.total:
            raise KeyboardInterrupt


def test_ctrl_c_aborts_says_where_the_guest_is_and_is_counted(
    short_dir: Path,
    policy_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    reachable: None,
) -> None:
    monkeypatch.setattr(ctl_ops, "ProgressLine", _CtrlC)
    socket = short_dir / "control.sock"
    cfg = _config(short_dir, SOURCE, policy_dir, socket)
    daemon, server = _serve(SOURCE, policy_dir, socket)
    try:
        assert main(["migrate", "--live", "opsa-00001", DEST, "--config", cfg]) == 1
        counted = daemon.telemetry().operations
    finally:
        server.close()
        daemon.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "migration aborted by Ctrl-C; it is still on sim://opsa" in err and "(running)" in err
    assert counted == Counter({("migrate", "aborted"): 1})


def test_ctrl_c_leaves_the_guest_on_the_source_without_a_hold(config: DaemonConfig) -> None:
    source, dest = open_simulated(SOURCE), open_simulated(DEST)
    try:
        with OpsContext(config=config).use(source) as ctx:
            with pytest.raises(KeyboardInterrupt):
                migrate_domain(
                    ctx, "opsa-00001", DEST, live=True, progress=_CtrlC(_Null()), destination=dest
                )
            assert "opsa-00001" in {d.name for d in source.domains()}
            assert "opsa-00001" not in {d.name for d in dest.domains()}
            assert source.holds() == {}
    finally:
        dest.close()


class _Null:
    def isatty(self) -> bool:
        return False


def test_no_daemon_no_report_same_outcome(
    short_dir: Path, policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(short_dir, HOST_URI, policy_dir, short_dir / "nobody.sock")
    assert main(["balloon", "web1", "1536", "--config", cfg]) == 0
    assert main(["balloon", "web1", "100", "--config", cfg]) == 3
    captured = capsys.readouterr()
    assert "1.5 GiB" in captured.out and captured.err.count("\n") == 1
    assert not (short_dir / "nobody.sock").exists()
