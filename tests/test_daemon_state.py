"""The state file: atomic, round-trips, survives garbage; and sd_notify datagrams."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from balloond.cli.ctl_view_text import status as status_text
from balloond.core.state import ControllerState, DomainMemo
from balloond.daemon import present
from balloond.daemon.notify import Notifier, watchdog_interval
from balloond.daemon.statefile import PersistedState, StateFile, hold_from_dict
from balloond.metrics import render
from balloond.model import Hold, Reason
from balloond.units import GiB, MiB
from tests.support.daemon import Recording, make_daemon, run_ticks, sim_host


def _state() -> PersistedState:
    controller = ControllerState.of(
        {"u1": DomainMemo(stuck_until=1_700_000_100.0, strikes=2, target=GiB)}
    )
    holds = {
        "u2": Hold(
            domain="u2",
            owner="balloonctl balloon",
            reason="pinned",
            until=None,
            target=512 * MiB,
            pid=None,
        )
    }
    return PersistedState(controller=controller.to_dict(), holds=holds)


def test_round_trip(tmp_path: Path) -> None:
    store = StateFile(tmp_path)
    assert store.save(_state()) is True
    loaded = StateFile(tmp_path).load()
    assert loaded.holds == _state().holds
    memo = ControllerState.from_dict(loaded.controller).memo("u1")
    assert memo.stuck_until == 1_700_000_100.0 and memo.strikes == 2
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600


def test_unchanged_state_is_not_rewritten(tmp_path: Path) -> None:
    store = StateFile(tmp_path)
    assert store.save(_state()) is True
    assert store.save(_state()) is False
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"], "no temp files left"


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"[1, 2, 3]",
        b'{"version": 99}',
        b'{"version": 1, "controller": [], "holds": {}}',
        b"[" * 100_000,
    ],
)
def test_garbage_starts_empty_and_is_set_aside(tmp_path: Path, garbage: bytes) -> None:
    (tmp_path / "state.json").write_bytes(garbage)
    loaded = StateFile(tmp_path).load()
    assert loaded.holds == {} and dict(loaded.controller) == {}
    assert (tmp_path / "state.json.bad").read_bytes() == garbage
    assert not (tmp_path / "state.json").exists()


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_bytes(b" " * (17 * MiB))
    assert StateFile(tmp_path).load().holds == {}


def test_garbage_controller_entries_are_dropped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps(
            {
                "version": 1,
                "controller": {"version": 1, "domains": {"u": {"strikes": "x"}}},
                "holds": {},
            }
        )
    )
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, state_dir=tmp_path)
    assert daemon.controller_state().domains == {}
    run_ticks(daemon, host, 2)


def test_daemon_persists_and_reloads_its_own_holds_and_marks(tmp_path: Path) -> None:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, state_dir=tmp_path)
    run_ticks(daemon, host, 2)
    web = next(d for d in host.domains() if d.name == "web")
    daemon.holds_book.put(web.uuid, Hold(domain=web.uuid, owner="test", reason="r"))
    run_ticks(daemon, host, 1)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert web.uuid in saved["holds"]
    assert saved["controller"]["domains"], "memos of the domains were saved"

    again = make_daemon(lambda: Recording(host), clock=host.now, state_dir=tmp_path)
    assert web.uuid in again.holds_book.own()
    assert set(again.controller_state().domains) == set(daemon.controller_state().domains)


def test_hold_from_dict_rejects_wrong_types() -> None:
    for raw in ("x", {"domain": ""}, {"domain": "u", "pid": True}, {"domain": "u", "owner": 3}):
        with pytest.raises(ValueError):
            hold_from_dict(raw)


def test_unwritable_state_dir_is_logged_counted_and_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state_dir = tmp_path / "state"
    state_dir.write_text("not a folder")  # every write fails
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, state_dir=state_dir)
    run_ticks(daemon, host, 2)
    assert any("could not write state file" in r.getMessage() for r in caplog.records)
    telemetry = daemon.telemetry()
    assert telemetry.tick_failures == 0 and telemetry.ticks == 2
    assert telemetry.state_write_failures == 2
    assert telemetry.last_state_error and "state.json" in telemetry.last_state_error
    status = present.status(daemon, daemon.policies.current, {}, host.now())
    assert status["state_write_failures"] == 2 and status["last_state_error"]
    assert "2 writes failed" in status_text(status)
    exposition = render(daemon).decode()
    assert "balloond_state_write_failures_total 2\n" in exposition
    assert "balloond_state_last_write_failed 1" in exposition

    state_dir.unlink()  # the disk is back
    run_ticks(daemon, host, 1)
    telemetry = daemon.telemetry()
    assert telemetry.state_write_failures == 2 and telemetry.last_state_error is None
    assert "balloond_state_last_write_failed 0" in render(daemon).decode()


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder", "socket"])
def test_a_state_file_that_is_not_a_regular_file_is_set_aside_unopened(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "state.json"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
    elif kind == "symlink":
        target = tmp_path / "elsewhere.json"
        target.write_text(json.dumps(PersistedState().to_json()))
        path.symlink_to(target)
    elif kind == "folder":
        path.mkdir()
    else:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
    loaded: list[PersistedState] = []
    reader = threading.Thread(target=lambda: loaded.append(StateFile(tmp_path).load()))
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the thread before failing
        with open(path, "w"):
            pass
        pytest.fail("loading the state file blocked")
    assert loaded == [PersistedState()]
    assert not path.exists() and os.path.lexists(tmp_path / "state.json.bad")
    if kind == "symlink":
        assert (tmp_path / "elsewhere.json").exists(), "the link's target is left alone"


def test_one_damaged_hold_is_set_aside_alone(tmp_path: Path) -> None:
    good = {"domain": "u1", "owner": "o", "reason": "r", "until": None, "target": 1 << 30}
    bad = {"domain": "u2", "owner": "o", "reason": "r", "until": "soon"}
    document = {"version": 1, "controller": {"version": 1, "domains": {}}, "holds": {}}
    document["holds"] = {"u1": good, "u2": bad}
    (tmp_path / "state.json").write_text(json.dumps(document))
    store = StateFile(tmp_path)
    loaded = store.load()
    assert set(loaded.holds) == {"u1"} and loaded.holds["u1"].target == 1 << 30
    aside = json.loads((tmp_path / "state.json.bad").read_text())
    assert aside["holds"] == {"u2": bad}
    assert store.save(loaded) is True, "rewritten at once without the damaged entry"
    assert set(json.loads((tmp_path / "state.json").read_text())["holds"]) == {"u1"}


def test_temp_files_of_an_interrupted_write_are_removed_at_start(tmp_path: Path) -> None:
    leftovers = [tmp_path / ".state.json.k3x9_a", tmp_path / ".state.json.q1"]
    for path in leftovers:
        path.write_text('{"half": ')
    others = [tmp_path / ".other.tmp", tmp_path / "notes.txt"]
    for path in others:
        path.write_text("not ours")
    (tmp_path / ".state.json.link").symlink_to(tmp_path / "notes.txt")
    StateFile(tmp_path).save(_state())
    StateFile(tmp_path).load()
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in others)
    assert os.path.islink(tmp_path / ".state.json.link"), "a symlink is not ours to remove"


def test_the_folder_is_synced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    StateFile(tmp_path).save(_state())
    assert synced == ["file", "folder"]


def test_notifier_sends_datagrams(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        notifier = Notifier(path)
        assert notifier.ready("3 domains")
        message = server.recv(4096).decode()
        assert "READY=1" in message.splitlines() and "STATUS=3 domains" in message
        assert notifier.watchdog()
        assert server.recv(4096) == b"WATCHDOG=1"


def test_notifier_without_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier().ready("x") is False
    assert Notifier("/nonexistent/socket").watchdog() is False  # logged, not raised


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "garbage")
    monkeypatch.delenv("WATCHDOG_PID")
    assert watchdog_interval() is None


def test_stuck_marks_and_holds_survive_a_restart_and_keep_the_domain_alone(
    tmp_path: Path,
) -> None:
    class StuckBalloon(Recording):
        """The balloon driver accepts targets and never moves (a stuck guest)."""

        def set_target(self, name: str, target: int) -> None:
            self.calls.append((name, target))

    host = sim_host()
    first = StuckBalloon(host)
    daemon = make_daemon(lambda: first, clock=host.now, state_dir=tmp_path)
    for _ in range(30):
        host.advance(5)
        daemon.tick()
        if daemon.stuck():
            break
    marks = dict(daemon.stuck())
    assert marks, "a balloon that never moves is marked stuck"
    stuck_uuid = next(iter(marks))
    held = next(d for d in host.domains() if d.uuid != stuck_uuid)
    daemon.holds_book.put(held.uuid, Hold(domain=held.uuid, owner="test", reason="keep"))
    daemon.tick()
    daemon.close()

    second = Recording(host)
    restarted = make_daemon(lambda: second, clock=host.now, state_dir=tmp_path)
    assert restarted.stuck() == marks
    assert held.uuid in restarted.holds_book.own()
    decision = restarted.tick()
    assert decision is not None
    by_uuid = {d.uuid: d for d in decision.domains}
    assert by_uuid[stuck_uuid].reason is Reason.STUCK and not by_uuid[stuck_uuid].act
    assert by_uuid[held.uuid].reason is Reason.HOLD and not by_uuid[held.uuid].act
    names = {by_uuid[stuck_uuid].name, held.name}
    assert not [call for call in second.calls if call[0] in names]
