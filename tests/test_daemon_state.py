"""The state file: atomic, round-trips, survives garbage; and sd_notify datagrams."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from balloond.core.state import ControllerState, DomainMemo
from balloond.daemon.notify import Notifier, watchdog_interval
from balloond.daemon.statefile import PersistedState, StateFile, hold_from_dict
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
        b'{"version": 1, "holds": {"u": {"domain": 5}}}',
        b'{"version": 1, "holds": {"u": {"domain": "u", "until": "soon"}}}',
        b'{"version": 1, "holds": {"u": {"domain": "u", "target": -1}}}',
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


def test_unwritable_state_dir_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, state_dir=blocker / "sub")
    run_ticks(daemon, host, 2)
    assert any("could not write state file" in r.getMessage() for r in caplog.records)
    assert daemon.telemetry().tick_failures == 0 and daemon.telemetry().ticks == 2


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
