"""Processes run as another local user (`nobody`): the racing symlink swapper and a fake
daemon on a control socket. They use only the standard library, through a Python that the
other user can execute (root's own interpreter may live in a folder only root can enter)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

NOBODY = 65534


def python_for_others() -> str | None:
    """An interpreter another user can run: the system's, else ours if it is reachable."""
    for candidate in ("/usr/bin/python3", shutil.which("python3"), sys.executable):
        if candidate and _world_executable(Path(candidate)):
            return candidate
    return None


def _world_executable(path: Path) -> bool:
    real = path.resolve()
    if not real.is_file() or not os.stat(real).st_mode & 0o001:
        return False
    return all(os.stat(folder).st_mode & 0o001 for folder in real.parents)


def can_run_as_nobody() -> str | None:
    """Why not (None: we can): it takes root, and an interpreter `nobody` can execute."""
    if os.geteuid() != 0:
        return "needs root (to run a second user's process)"
    if python_for_others() is None:
        return "no Python interpreter that user nobody can execute"
    return None


def start_as_nobody(code: str, *args: str) -> subprocess.Popen[bytes]:
    python = python_for_others()
    if python is None:
        raise RuntimeError("no Python interpreter that user nobody can execute")
    return subprocess.Popen(
        [python, "-c", code, *args],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    """Stop a process by its pid; its output."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    return out.decode(errors="replace"), err.decode(errors="replace")


# A daemon impostor: answers every control request with text full of terminal escapes (a
# window title, a screen clear, an 8-bit CSI), as a socket planted by another user could.
FAKE_DAEMON = r"""
import json, os, socket, sys
path = sys.argv[1]
evil = "evil\x1b]0;owned\x07\x1b[2J\x9b31m"
row = {"name": evil, "id": 1, "uuid": evil, "mem": 1 << 30, "maxmem": 1 << 31,
       "target": 1 << 30, "vcpus": 1, "state": "r", "state_name": "running", "job": None,
       "time": 1.0, "policy": evil, "pressure": 0.01, "floor": 1 << 29, "ceiling": 1 << 31,
       "reason": "steady", "hold": {"owner": evil, "reason": evil, "target": None,
       "until": None, "remaining": None, "domain": evil, "pid": None},
       "stuck_until": None, "report_age": 1.0}
status = {"version": evil, "pid": os.getpid(), "uri": evil, "connected": True, "ticks": 1,
          "policies": [evil], "last_policy_error": evil, "domains": 1, "holds": 1}
answers = {"status": status, "list": {"uri": evil, "rows": [row], "connected": True,
           "taken_at": None, "now": 0.0}, "holds": {"uri": evil, "holds": [row["hold"]]}}
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o777)
server.listen(8)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        try:
            cmd = json.loads(data).get("cmd")
        except ValueError:
            cmd = None
        result = answers.get(cmd, {"uri": evil})
        try:
            conn.sendall(json.dumps({"ok": True, "result": result}).encode() + b"\n")
        except OSError:
            pass  # the client hung up without asking: it checked who serves the socket
"""
