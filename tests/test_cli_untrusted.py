"""balloonctl against what it cannot trust: a control socket another user serves, and names
or answers carrying terminal escapes (issue 16, defect 11)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from balloond.cli.ctl import main
from balloond.cli.printable import printable, printable_data
from balloond.daemon.control import ControlClient, ControlServer
from balloond.errors import ControlError
from chaos import other_user

EVIL = "evil\x1b]0;owned\x07\x1b[2J\x9b31m\u202etxt.exe"
SHOWN = "evil\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202etxt.exe"
CONTROL = {*range(0x00, 0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0), 0x202E}


def _raw_control(text: str) -> bool:
    return any(ord(c) in CONTROL for c in text)


def test_printable_shows_what_it_would_have_sent() -> None:
    assert printable(EVIL) == SHOWN
    assert printable("web-1 ünïcode 名前") == "web-1 ünïcode 名前"
    assert printable("two\nlines") == "two\\x0alines"
    assert printable("two\nlines\tand a tab", lines=True) == "two\nlines\\x09and a tab"
    assert printable_data({EVIL: [EVIL, 1, None, {"k": EVIL}]}) == {
        SHOWN: [SHOWN, 1, None, {"k": SHOWN}]
    }


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bo-ctl-"))  # short: unix socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _row(name: str) -> dict[str, Any]:
    hold = {"owner": name, "reason": name, "target": None, "until": None, "remaining": None}
    return {
        "name": name,
        "id": 1,
        "uuid": name,
        "mem": 1 << 30,
        "maxmem": 1 << 31,
        "target": 1 << 30,
        "vcpus": 1,
        "state": "r",
        "policy": name,
        "pressure": 0.01,
        "floor": 1 << 29,
        "ceiling": 1 << 31,
        "reason": name,
        "hold": {**hold, "domain": name, "pid": None},
        "report_age": 1.0,
    }


def test_escapes_in_a_daemons_answers_never_reach_the_terminal(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = {"version": EVIL, "pid": 1, "uri": EVIL, "connected": True, "policies": [EVIL]}
    handlers = {
        "status": lambda request: {**status, "last_policy_error": EVIL},
        "list": lambda request: {"uri": EVIL, "rows": [_row(EVIL)], "connected": True},
        "holds": lambda request: {"uri": EVIL, "holds": [{"name": EVIL, **_row(EVIL)["hold"]}]},
        "explain": lambda request: {"error": EVIL},
    }
    server = ControlServer(folder / "c.sock", handlers)
    try:
        for argv in (["status"], ["list"], ["list", "--name"], ["holds"], ["top", "--once"]):
            assert main([*argv, "--socket", str(server.path)]) == 0
            out, err = capsys.readouterr()
            assert not _raw_control(out + err), argv
            assert "evil\\x1b]0;owned" in out, argv
    finally:
        server.close()


def test_escapes_in_an_error_line_never_reach_the_terminal(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(request: Any) -> object:
        raise ControlError(EVIL)

    server = ControlServer(folder / "c.sock", {"status": broken})
    try:
        assert main(["status", "--socket", str(server.path)]) != 0
        err = capsys.readouterr().err
        assert not _raw_control(err) and SHOWN in err
    finally:
        server.close()


@pytest.fixture
def impostor(folder: Path) -> Iterator[Path]:
    """A daemon impostor run as user nobody on a socket path (chaos.other_user's)."""
    why_not = other_user.can_run_as_nobody()
    if why_not is not None:
        pytest.skip(why_not)
    folder.chmod(0o777)
    path = folder / "control.sock"
    proc = other_user.start_as_nobody(other_user.FAKE_DAEMON, str(path))
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        yield path
    finally:
        other_user.stop(proc)


def test_a_socket_served_by_another_user_is_not_talked_to(
    impostor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ControlError, match=r"served by user 'nobody' \(uid 65534\), not root"):
        ControlClient(impostor).call("status")
    assert main(["status", "--socket", str(impostor)]) == 4
    assert "not talking to it" in capsys.readouterr().err


def test_the_daemon_answers_only_root_and_its_own_user(folder: Path) -> None:
    why_not = other_user.can_run_as_nobody()
    if why_not is not None:
        pytest.skip(why_not)
    server = ControlServer(folder / "c.sock", {"status": lambda request: {"uri": "secret"}})
    try:
        folder.chmod(0o755)
        server.path.chmod(0o777)  # widened by mistake: the credentials check still holds
        probe = (
            "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "print(s.recv(65536).decode())"  # told at once: it need not even ask
        )
        out, _ = other_user.start_as_nobody(probe, str(server.path)).communicate(timeout=30)
        assert b"not allowed" in out and b"secret" not in out
        assert ControlClient(server.path).call("status") == {"uri": "secret"}
    finally:
        server.close()
