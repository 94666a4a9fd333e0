"""The daemon's local control socket: JSON lines, one request, one response.

Request:  {"cmd": "explain", "domain": "web1"}\\n
Response: {"ok": true, "result": ...}\\n  or  {"ok": false, "error": "one clear line"}\\n

The socket is a unix stream socket of mode 0600 in a folder of mode 0700: only its owner
(root, for the system daemon) can talk to it, and the server checks each client's
credentials (SO_PEERCRED: root or the daemon's own user) in case the modes were widened.
The client checks the server's the same way: a socket another user planted at the path is
not talked to. Everything a client sends is untrusted: requests are capped in size, each has
a deadline (not a timeout per receive), connections are capped in number with slow ones
shed for new ones (`balloond.slots`), and a malformed request gets an error response;
nothing a client does can end the daemon or its tick, or keep an operator's `status` out.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import math
import os
import pwd
import socket
import stat
import struct
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from balloond.errors import (
    BalloondError,
    ConfigError,
    ControlError,
    DomainNotFound,
    Refused,
)
from balloond.slots import Slot, Slots
from balloond.units import KiB, MiB

log = logging.getLogger("balloond.control")

MAX_REQUEST_BYTES = 64 * KiB
MAX_RESPONSE_BYTES = 64 * MiB
MAX_CONNECTIONS = 16
REQUEST_DEADLINE = 10.0  # seconds for a request to arrive whole, and for its answer to leave
MAX_INT_DIGITS = 20

Handler = Callable[[Mapping[str, Any]], object]


class DaemonNotRunning(ControlError):
    """Nothing listens on the control socket: the caller may compute the answer itself."""


class RequestError(BalloondError):
    """A request was malformed (sent back to the client, not raised in the daemon)."""

    kind = "bad_request"


class UnknownDomain(RequestError):
    """A request named a domain the daemon does not see. The client raises DomainNotFound."""

    kind = "not_found"


class ControlServer:
    """Serves `handlers` (command name -> function of the request) on a unix socket."""

    def __init__(self, path: str | os.PathLike[str], handlers: Mapping[str, Handler]) -> None:
        self.path = Path(path)
        self._handlers = dict(handlers)
        self._slots = Slots(MAX_CONNECTIONS, REQUEST_DEADLINE)
        self._stopping = threading.Event()
        self._sock = _listen(self.path)
        self._thread = threading.Thread(
            target=self._accept_loop, name="balloond-control", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError as error:
                if self._stopping.is_set():
                    return
                log.warning("control socket: accept failed: %s", error)
                self._stopping.wait(0.1)  # e.g. out of file descriptors: do not spin
                continue
            if not _trusted_peer(conn):
                _send_quietly(conn, _error("not allowed: root or the daemon's user only"))
                conn.close()
                continue
            slot = self._slots.take(functools.partial(_hang_up, conn))
            if slot is None:
                _send_quietly(conn, _error("too many control connections; try again"))
                conn.close()
                continue
            threading.Thread(
                target=self._serve, args=(conn, slot), name="balloond-control-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket, slot: Slot) -> None:
        try:
            with conn:
                self._serve_lines(conn, slot)
        except OSError as error:
            log.debug("control connection ended: %s", error)
        finally:
            self._slots.give_back(slot)

    def _serve_lines(self, conn: socket.socket, slot: Slot) -> None:
        buffer = b""
        while True:
            newline = buffer.find(b"\n")
            request_size = len(buffer) if newline < 0 else newline  # so far, or whole
            if request_size > MAX_REQUEST_BYTES:
                conn.sendall(_error(f"request larger than {MAX_REQUEST_BYTES} bytes"))
                return
            if newline < 0:
                # A deadline for the whole request, not a timeout per receive: a client
                # sending a byte a second must not hold the connection.
                chunk = self._receive(conn, slot)
                if not chunk:
                    return
                buffer += chunk
                continue
            line, buffer = buffer[:newline], buffer[newline + 1 :]
            self._slots.answering(slot)
            response = self.respond(line)
            self._slots.waiting(slot)  # the next request's deadline starts now
            conn.settimeout(REQUEST_DEADLINE)  # the answer too must go out in time
            conn.sendall(response)

    def _receive(self, conn: socket.socket, slot: Slot) -> bytes:
        """The next bytes of a request, or b"" once its deadline has passed (the client is
        told so) or the client hung up."""
        remaining = self._slots.remaining(slot)
        try:
            if remaining > 0:
                conn.settimeout(remaining)
                return conn.recv(65536)
        except TimeoutError:
            pass
        conn.settimeout(1.0)
        conn.sendall(_error(f"request not complete within {REQUEST_DEADLINE:g} s"))
        return b""

    def respond(self, line: bytes) -> bytes:
        """The response line for one request line. Never raises."""
        try:
            request = _parse(line)
            handler = self._handlers.get(request["cmd"])
            if handler is None:
                known = ", ".join(sorted(self._handlers))
                raise RequestError(f"unknown command {request['cmd']!r:.60} (known: {known})")
            result = handler(request)
            return _encode({"ok": True, "result": result})
        except RequestError as error:
            return _error(str(error), error.kind)
        except Refused as error:  # balloonctl exits 3 on it, as if it had refused itself
            return _error(str(error), "refused")
        except BalloondError as error:
            return _error(str(error))
        except Exception as error:  # a handler bug answers the client; the daemon goes on
            log.exception("control command failed")
            return _error(f"internal error: {type(error).__name__}: {error}")


def _parse(line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line.decode("utf-8"), parse_int=_bounded_int)
    except RequestError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RequestError("request is not a JSON object on one line") from None
    if not isinstance(request, dict):
        raise RequestError(f"request must be a JSON object, got: {type(request).__name__}")
    if not isinstance(request.get("cmd"), str):
        raise RequestError("request needs a string 'cmd'")
    return request


def _bounded_int(text: str) -> int:
    """No value of a request needs more digits than a byte count (2^64 has 20); a longer
    integer is refused before Python converts it (5000 digits cost a ValueError, and a
    traceback, in int() itself)."""
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise RequestError(f"request has an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _trusted_peer(conn: socket.socket) -> bool:
    """Root, or the user the daemon runs as: the socket's mode says the same, unless someone
    widened it."""
    try:
        uid = peer_uid(conn)
    except OSError:
        return False
    return uid in (0, os.geteuid())


def _user(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _hang_up(conn: socket.socket) -> None:
    """Shed a connection from another thread: its pending receive returns at once."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def _encode(message: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(message, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:  # a NaN or infinity somewhere: JSON has no such numbers
        text = json.dumps(_finite(message), separators=(",", ":"), default=str)
    return (text + "\n").encode()


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _error(message: str, kind: str = "error") -> bytes:
    return _encode({"ok": False, "error": message, "kind": kind})


def _send_quietly(conn: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(data)


def _listen(path: Path) -> socket.socket:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create its folder: {error}", key="control_socket", file=str(path)
        ) from error
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o177)  # born 0600: no window where others could connect
    try:
        sock.bind(str(path))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen: {error}", key="control_socket", file=str(path)
        ) from error
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(4 * MAX_CONNECTIONS)  # room for a burst while the accept loop turns away
    return sock


def _remove_stale(path: Path) -> None:
    """A socket file left by a daemon that died is removed; a live one is an error, and so
    is anything that is not a socket (a mistyped `--socket` must not delete a file)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as error:
        raise ConfigError(
            f"cannot check it: {error}", key="control_socket", file=str(path)
        ) from None
    if not stat.S_ISSOCK(info.st_mode):
        raise ConfigError(
            "something that is not a socket is there; not removing it (move it away or "
            "choose another path)",
            key="control_socket",
            file=str(path),
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise ControlError(f"control socket {str(path)!r}: another balloond is listening there")


class ControlClient:
    """Talks to a running daemon. Raises DaemonNotRunning when nothing listens."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        request = _encode({"cmd": cmd, **args})
        with self._connect() as sock:
            sock.sendall(request)
            response = _read_line(sock, self.path)
        if not isinstance(response, dict) or not isinstance(response.get("ok"), bool):
            raise ControlError(f"control socket {str(self.path)!r}: malformed response")
        if not response["ok"]:
            message = f"balloond: {response.get('error', 'unknown error')}"
            if response.get("kind") == "not_found":
                raise DomainNotFound(message)
            if response.get("kind") == "refused":
                raise Refused(message)
            raise ControlError(message)
        return response.get("result")

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError as error:
            sock.close()
            if error.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                raise DaemonNotRunning(
                    f"balloond is not running (no listener on {str(self.path)!r})"
                ) from error
            raise ControlError(f"control socket {str(self.path)!r}: {error}") from error
        uid = peer_uid(sock)
        if uid not in (0, os.geteuid()):
            sock.close()
            raise ControlError(
                f"control socket {str(self.path)!r} is served by {_user(uid)}, not root or "
                "you: not talking to it (another user may have put it there)"
            )
        return sock


def _read_line(sock: socket.socket, path: Path) -> Any:
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if chunk.endswith(b"\n") or size > MAX_RESPONSE_BYTES:
                break
    except OSError as error:
        raise ControlError(f"control socket {str(path)!r}: {error}") from error
    data = b"".join(chunks)
    if size > MAX_RESPONSE_BYTES or not data.endswith(b"\n"):
        raise ControlError(f"control socket {str(path)!r}: incomplete or oversized response")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ControlError(f"control socket {str(path)!r}: malformed response") from error


def report_operation(
    path: str | os.PathLike[str],
    operation: str,
    result: str,
    *,
    duration: float | None = None,
    downtime: float | None = None,
) -> bool:
    """Tell a running daemon that balloonctl ran an operation (save, restore, migrate,
    balloon, maxmem; result ok, failed, refused, aborted), so its metrics count it.
    Best effort: returns False, never raises, when no daemon listens or it refuses."""
    args: dict[str, Any] = {"operation": operation, "result": result}
    if duration is not None:
        args["duration"] = duration
    if downtime is not None:
        args["downtime"] = downtime
    try:
        ControlClient(path, timeout=2.0).call("operation", **args)
    except BalloondError as error:
        log.debug("operation %s/%s not reported to the daemon: %s", operation, result, error)
        return False
    return True
