"""balloonctl against what it cannot trust: a control socket another user serves, and names
or answers carrying terminal escapes (issue 16, defect 11)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from balloond.cli.ctl import main
from balloond.cli.printable import printable, printable_data
from balloond.daemon.control import ControlClient, ControlServer
from balloond.errors import ControlError

NOBODY = 65534
EVIL = "evil\x1b]0;owned\x07\x1b[2J\x9b31m\u202etxt.exe"
SHOWN = "evil\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202etxt.exe"
CONTROL = {*range(0x00, 0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0), 0x202E}

# A server run as another user: answers every line with a status naming it.
IMPOSTOR = r"""
import os, socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
server.listen(4)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    try:
        conn.recv(65536)
        conn.sendall(b'{"ok": true, "result": {"uri": "impostor"}}\n')
    except OSError:
        pass  # the client hung up at once: it checked who serves the socket
    conn.close()
"""


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


def _python_for_nobody() -> str | None:
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and os.stat(Path(candidate).resolve()).st_mode & 0o001:
            return candidate
    return None


@pytest.fixture
def impostor(folder: Path) -> Iterator[Path]:
    python = _python_for_nobody()
    if os.geteuid() != 0 or python is None:
        pytest.skip("needs root and a Python user nobody can run, to serve as another user")
    folder.chmod(0o777)
    path = folder / "control.sock"
    proc = subprocess.Popen(
        [python, "-c", IMPOSTOR, str(path)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        yield path
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def test_a_socket_served_by_another_user_is_not_talked_to(
    impostor: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ControlError, match=r"served by user 'nobody' \(uid 65534\), not root"):
        ControlClient(impostor).call("status")
    assert main(["status", "--socket", str(impostor)]) == 4
    assert "not talking to it" in capsys.readouterr().err


def test_the_daemon_answers_only_root_and_its_own_user(folder: Path) -> None:
    python = _python_for_nobody()
    if os.geteuid() != 0 or python is None:
        pytest.skip("needs root and a Python user nobody can run, to connect as another user")
    server = ControlServer(folder / "c.sock", {"status": lambda request: {"uri": "secret"}})
    try:
        folder.chmod(0o755)
        server.path.chmod(0o777)  # widened by mistake: the credentials check still holds
        probe = (
            "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "print(s.recv(65536).decode())"  # told at once: it need not even ask
        )
        done = subprocess.run(
            [python, "-c", probe, str(server.path)],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_output=True,
            timeout=30,
            check=True,
        )
        assert "not allowed" in done.stdout.decode() and "secret" not in done.stdout.decode()
        assert ControlClient(server.path).call("status") == {"uri": "secret"}
    finally:
        server.close()
