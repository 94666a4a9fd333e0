"""The agent's local control socket: `balloond-guest target SIZE` tells the running agent.

A virtio-serial port can be open by one process only, so a second `balloond-guest` cannot
send to the host itself while the agent runs; it hands the request to the agent instead.
One JSON line in ({"request": bytes or null}), one line out ("ok" or an error).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from balloond_guest.agent import Agent

DEFAULT_PATH = "/run/balloond-guest.sock"


class ControlServer:
    def __init__(self, path: str) -> None:
        self.path = path
        if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # left by an agent that died; connect() would fail anyway
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)  # root only: a request changes the guest's memory
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        self.sock.listen(4)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def serve(self, agent: Agent) -> bool:
        """Answer one client; True when the agent's request changed."""
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return False
        with conn:
            conn.settimeout(1.0)
            try:
                message = json.loads(_read_line(conn).decode("utf-8"))
                size = message["request"]
                if size is not None and (type(size) is not int or size <= 0):
                    raise ValueError("request must be a positive integer of bytes or null")
            except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError) as error:
                _reply(conn, "error: %s" % error)
                return False
            agent.set_request(size)
            _reply(conn, "ok")
            return True

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < 4096:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def _reply(conn: socket.socket, text: str) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(text.encode("utf-8") + b"\n")


def send_request(path: str, size: int | None, timeout: float = 5.0) -> str:
    """Ask the running agent at `path` to request `size` bytes (None: automatic). Returns
    the agent's answer; raises OSError when no agent listens there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps({"request": size}).encode("ascii") + b"\n")
        return _read_line(sock).decode("utf-8", "replace")
