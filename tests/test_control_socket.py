"""The control socket: its commands, its permissions, and hostile clients that must never end
the daemon (garbage, huge lines, wrong types, floods)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from balloond.daemon.commands import handlers
from balloond.daemon.control import (
    MAX_CONNECTIONS,
    MAX_REQUEST_BYTES,
    ControlClient,
    ControlServer,
    DaemonNotRunning,
)
from balloond.daemon.loop import Daemon
from balloond.errors import ControlError
from tests.support.daemon import Recording, make_daemon, run_ticks, sim_host


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Daemon, ControlServer, Any]]:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    run_ticks(daemon, host, 3)
    server = ControlServer(tmp_path / "run" / "control.sock", handlers(daemon, dict))
    try:
        yield daemon, server, host
    finally:
        server.close()


def _raw(path: Path, payload: bytes, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Send raw bytes, read every response line until the server closes or goes quiet."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may hang up on a huge request before reading it all
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError:
            pass
    return [json.loads(line) for line in data.splitlines() if line]


def _retry(call: Any) -> Any:
    """Retry while the listen backlog is full (the accept loop is still turning the flood
    away): a refused connect is the kernel's answer, not the daemon's."""
    for _ in range(600):
        try:
            return call()
        except BlockingIOError:
            threading.Event().wait(0.05)
    return call()


def test_socket_and_folder_are_private(running: tuple[Daemon, ControlServer, Any]) -> None:
    _, server, _ = running
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(server.path.stat().st_mode)


def test_commands(running: tuple[Daemon, ControlServer, Any]) -> None:
    _, server, _ = running
    client = ControlClient(server.path)
    status = client.call("status")
    assert status["uri"] == "test" and status["domains"] == 6 and status["ticks"] == 3
    rows = client.call("list")["rows"]
    assert {r["name"] for r in rows} == {"idle", "web", "leak", "batch", "cache", "legacy"}
    for row in rows:
        assert row["floor"] <= row["target"] <= row["maxmem"]
    explained = client.call("explain", domain="web")
    assert explained["domain"]["name"] == "web"
    assert explained["policy"]["selector"] == "default"
    assert explained["decision"]["explanation"]
    assert client.call("holds")["holds"] == []


def test_hold_and_release(running: tuple[Daemon, ControlServer, Any]) -> None:
    daemon, server, host = running
    client = ControlClient(server.path)
    answer = client.call("hold", domain="web", seconds=600, reason="maintenance")
    assert answer["stored"] == "backend"  # the simulated host is a HoldStore
    run_ticks(daemon, host, 1)
    holds = client.call("holds")["holds"]
    assert [h["name"] for h in holds] == ["web"] and holds[0]["reason"] == "maintenance"
    assert client.call("release", domain="web")["released"] is True
    run_ticks(daemon, host, 1)
    assert client.call("holds")["holds"] == []


@pytest.mark.parametrize(
    ("request_line", "error"),
    [
        (b"garbage\n", "not a JSON object"),
        (b"\xff\xfe\x00\n", "not a JSON object"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b'{"cmd": 5}\n', "string 'cmd'"),
        (b"{}\n", "string 'cmd'"),
        (b'{"cmd": "reboot"}\n', "unknown command"),
        (b'{"cmd": "explain"}\n', "'domain' must be"),
        (b'{"cmd": "explain", "domain": ["web"]}\n', "'domain' must be"),
        (b'{"cmd": "explain", "domain": "nosuch"}\n', "not known"),
        (b'{"cmd": "hold", "domain": "web", "seconds": "abc"}\n', "'seconds' must be"),
        (b'{"cmd": "hold", "domain": "web", "seconds": -5}\n', "'seconds' must be"),
        (b'{"cmd": "hold", "domain": "web", "seconds": NaN}\n', "'seconds' must be"),
        (b'{"cmd": "hold", "domain": "web", "target": true}\n', "'target' must be"),
        (b'{"cmd": "hold", "domain": "web", "target": 1e400}\n', "'target' must be"),
        (b'{"cmd": "hold", "domain": "web", "pid": -1}\n', "'pid' must be"),
        (b'{"cmd": "release", "domain": "' + b"x" * 1000 + b'"}\n', "longer than"),
        (b"[" * 50_000 + b"\n", "not a JSON object"),
        (
            b'{"cmd": "hold", "domain": "web", "target": ' + b"9" * 5000 + b"}\n",
            "integer of 5000 digits",
        ),
        (b'{"cmd": "hold", "domain": "web", "pid": -' + b"1" * 21 + b"}\n", "21 digits"),
    ],
)
def test_malformed_requests_get_an_error_response(
    running: tuple[Daemon, ControlServer, Any], request_line: bytes, error: str
) -> None:
    _, server, _ = running
    responses = _raw(server.path, request_line)
    assert len(responses) == 1 and responses[0]["ok"] is False
    assert error in responses[0]["error"]
    assert ControlClient(server.path).call("status")["domains"] == 6, "still serving"


def test_a_huge_integer_is_one_clear_line_not_a_traceback(
    running: tuple[Daemon, ControlServer, Any], caplog: pytest.LogCaptureFixture
) -> None:
    _, server, _ = running
    request = b'{"cmd": "hold", "domain": "web", "target": ' + b"9" * 5000 + b"}\n"
    responses = _raw(server.path, request)
    assert responses[0]["error"] == "request has an integer of 5000 digits (at most 20)"
    assert responses[0]["kind"] == "bad_request"
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the daemon's log"


def test_a_huge_line_is_refused_and_the_connection_closed(
    running: tuple[Daemon, ControlServer, Any],
) -> None:
    _, server, _ = running
    responses = _raw(server.path, b"x" * (MAX_REQUEST_BYTES * 4))
    assert responses and "larger than" in responses[0]["error"]
    padded = b'{"cmd": "status", "pad": "' + b"y" * MAX_REQUEST_BYTES + b'"}\n'
    responses = _raw(server.path, padded)
    assert responses and "larger than" in responses[0]["error"]
    assert ControlClient(server.path).call("status")["domains"] == 6


def test_many_requests_on_one_connection(running: tuple[Daemon, ControlServer, Any]) -> None:
    _, server, _ = running
    responses = _raw(server.path, b'{"cmd": "status"}\n' * 50 + b"junk\n")
    assert len(responses) == 51
    assert all(r["ok"] for r in responses[:50]) and responses[50]["ok"] is False


def test_a_flood_of_idle_connections_does_not_lock_out_the_daemon(
    running: tuple[Daemon, ControlServer, Any],
) -> None:
    daemon, server, host = running
    idle = []
    try:
        for _ in range(MAX_CONNECTIONS * 2):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(server.path))
            idle.append(sock)
        # Past the cap, each new connection sheds the oldest idle one: an operator's
        # request gets in, answered, while the flood goes on.
        answer = _retry(lambda: _raw(server.path, b'{"cmd": "status"}\n', timeout=5))
        assert answer and answer[0]["ok"] is True
        run_ticks(daemon, host, 1)  # the loop is not blocked by the socket
    finally:
        for sock in idle:
            sock.close()
    assert ControlClient(server.path).call("status")["ticks"] == 4


def test_slow_loris_clients_do_not_lock_out_status(
    running: tuple[Daemon, ControlServer, Any],
) -> None:
    """Issue 16: 16 connections sending a byte a second locked `balloonctl status` out for
    the whole attack (a timeout per receive, 16 slots)."""
    _, server, _ = running
    slow = []
    try:
        for _ in range(16):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(server.path))
            sock.sendall(b'{"cmd": ')
            slow.append(sock)
        for _ in range(3):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")
            assert ControlClient(server.path, timeout=5).call("status")["domains"] == 6
    finally:
        for sock in slow:
            sock.close()


def test_a_request_has_a_deadline_not_a_timeout_per_receive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from balloond.daemon import control

    monkeypatch.setattr(control, "REQUEST_DEADLINE", 0.5)
    server = ControlServer(tmp_path / "c.sock", {"ping": lambda request: "pong"})
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(server.path))
            sock.settimeout(0.1)
            answer = b""
            for _ in range(50):  # a byte every 0.1 s, for up to 5 s
                with contextlib.suppress(OSError):  # hung up on: read what it said
                    sock.sendall(b" ")
                try:
                    answer += sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if answer.endswith(b"\n"):
                    break
            assert b"request not complete within 0.5 s" in answer
    finally:
        server.close()


def test_client_when_no_daemon_runs(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning):
        ControlClient(tmp_path / "none.sock").call("status")
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))  # bound, never listening: what a crashed daemon leaves
    with pytest.raises(DaemonNotRunning):
        ControlClient(stale).call("status")


@pytest.mark.parametrize("kind", ["file", "folder", "symlink", "fifo"])
def test_only_a_stale_socket_is_removed(tmp_path: Path, kind: str) -> None:
    """Issue 16: `--socket FILE` deleted whatever was at that path."""
    from balloond.errors import ConfigError

    path = tmp_path / "control.sock"
    if kind == "file":
        path.write_text("precious\n")
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink":
        (tmp_path / "target").write_text("precious\n")
        path.symlink_to(tmp_path / "target")
    else:
        os.mkfifo(path)
    with pytest.raises(ConfigError, match="control_socket: something that is not a socket"):
        ControlServer(path, {})
    assert os.path.lexists(path)
    if kind == "file":
        assert path.read_text() == "precious\n"


def test_a_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
    server = ControlServer(path, {"ping": lambda request: "pong"})
    try:
        assert ControlClient(path).call("ping") == "pong"
        with pytest.raises(ControlError, match="another balloond"):
            ControlServer(path, {})
    finally:
        server.close()
    assert not path.exists()


def test_a_handler_bug_answers_an_error_and_the_server_goes_on(tmp_path: Path) -> None:
    def broken(request: Any) -> object:
        raise ZeroDivisionError("boom")

    server = ControlServer(tmp_path / "c.sock", {"broken": broken, "ping": lambda r: "pong"})
    try:
        with pytest.raises(ControlError, match="internal error: ZeroDivisionError"):
            ControlClient(server.path).call("broken")
        assert ControlClient(server.path).call("ping") == "pong"
    finally:
        server.close()


def test_operations_reported_by_balloonctl_are_counted(
    running: tuple[Daemon, ControlServer, Any],
) -> None:
    daemon, server, _ = running
    client = ControlClient(server.path)
    client.call("operation", operation="migrate", result="ok", duration=12.5, downtime=0.05)
    client.call("operation", operation="save", result="failed")
    telemetry = daemon.telemetry()
    assert telemetry.operations[("migrate", "ok")] == 1
    assert telemetry.operations[("save", "failed")] == 1
    assert telemetry.migration_durations == [12.5]
    for bad in (
        {"operation": "rm -rf", "result": "ok"},
        {"operation": "save", "result": "x"},
        {"operation": "save", "result": "ok", "duration": "long"},
    ):
        with pytest.raises(ControlError, match="must be"):
            client.call("operation", **bad)
    assert sum(daemon.telemetry().operations.values()) == 2


def test_a_socket_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    from balloond.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="control_socket: cannot create its folder"):
        ControlServer(blocker / "sub" / "control.sock", {})
    with pytest.raises(ConfigError, match="cannot listen"):
        ControlServer(tmp_path / ("x" * 120) / "control.sock", {})  # longer than sun_path


def test_report_operation_is_best_effort(
    running: tuple[Daemon, ControlServer, Any], tmp_path: Path
) -> None:
    from balloond.daemon.control import report_operation

    daemon, server, _ = running
    assert report_operation(server.path, "restore", "ok", duration=1.5) is True
    assert report_operation(server.path, "nonsense", "ok") is False
    assert report_operation(tmp_path / "nobody.sock", "save", "ok") is False
    assert daemon.telemetry().operations == {("restore", "ok"): 1}


def test_non_finite_numbers_in_an_answer_become_null(tmp_path: Path) -> None:
    answer = {"pressure": float("nan"), "rows": [{"x": float("inf")}, (1.5, float("-inf"))]}
    server = ControlServer(tmp_path / "c.sock", {"odd": lambda request: answer})
    try:
        assert ControlClient(server.path).call("odd") == {
            "pressure": None,
            "rows": [{"x": None}, [1.5, None]],
        }
    finally:
        server.close()
