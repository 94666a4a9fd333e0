"""A small HTTP/1.1 server for one job: answer GET /metrics, whatever the network sends.

One thread and a selector own every connection; nothing a client does costs more than a
bounded buffer and a slot (`balloond.slots`):

- a request head (request line and headers) larger than `MAX_REQUEST_BYTES` is answered
  431 and the connection closed, before anything in it is parsed or authenticated: the
  memory of a connection is that buffer, whatever it sends;
- a request must arrive whole, TLS handshake included, within `REQUEST_DEADLINE` of the
  connection, and its answer go out within `WRITE_DEADLINE`: a client sending a header line
  every few seconds is cut off, not waited for;
- at most `MAX_CONNECTIONS` at once; a new one sheds the oldest that has not sent its
  request yet, so slow clients cannot keep a scrape out;
- one request per connection (`Connection: close`): an idle keep-alive client holds
  nothing; Prometheus simply connects again at its next scrape.

The answer itself comes from `respond(request) -> Response`, run on the selector's thread:
one render at a time, as before.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from balloond.slots import Slot, Slots

log = logging.getLogger("balloond.metrics")

MAX_REQUEST_BYTES = 8192  # Prometheus sends ~300 bytes; basic auth and proxies add a little
MAX_CONNECTIONS = 32  # Prometheus needs one per scraping server; more is a flood
REQUEST_DEADLINE = 5.0  # seconds from accept to a complete request (TLS handshake included)
WRITE_DEADLINE = 10.0  # seconds for the answer to go out
TICK = 0.25  # seconds between looks at the deadlines
ACCEPTS_PER_TURN = 8
READ_CHUNK = 4096

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    505: "HTTP Version Not Supported",
}
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE = re.compile(rb"\r?\n")


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    headers: Mapping[str, str]  # names in lower case; a repeated header keeps its last value


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Respond = Callable[[Request], Response]


class BadRequest(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_head(untrusted: bytes) -> Request:
    """A request head (without its blank line). Raises BadRequest with the status to send."""
    lines = _LINE.split(untrusted)
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[1]:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/1."):
        raise BadRequest(505, "only HTTP/1.x is served")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():  # obs-fold, or no name
            raise BadRequest(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        raise BadRequest(400, "a GET or HEAD request has no body")
    return Request(method, target.split("?", 1)[0], headers)


def encode(response: Response, *, head_only: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Error')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


class _Connection:
    def __init__(self, sock: socket.socket, slot: Slot | None, handshaking: bool) -> None:
        self.sock = sock
        self.slot = slot
        self.handshaking = handshaking
        self.inbox = bytearray()
        self.outbox = b""
        self.sent = 0


class HttpServer:
    """Serves `respond` on a bound, listening socket until `close()`."""

    def __init__(
        self, listener: socket.socket, respond: Respond, context: ssl.SSLContext | None
    ) -> None:
        self._listener = listener
        self._respond = respond
        self._context = context
        self.slots = Slots(MAX_CONNECTIONS, REQUEST_DEADLINE)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        listener.setblocking(False)
        self._wake_r.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="balloond-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, _Connection):
                self._drop(key.data)
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            ready = self._selector.select(timeout=TICK)
            # Requests already here first: new connections may shed the oldest waiting one,
            # which must not be one whose request has arrived but is not read yet.
            for key, _ in ready:
                if isinstance(key.data, _Connection):
                    self._step(key.data)
            if any(key.fileobj is self._listener for key, _ in ready):
                self._accept()
            for slot in self.slots.overdue():
                slot.shed()

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):  # a few per turn; a flood waits in the backlog
            try:
                raw, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of descriptors: the next turn tries again
                log.debug("metrics: accept failed: %s", error)
                return
            raw.setblocking(False)
            sock = raw
            if self._context is not None:
                sock = self._context.wrap_socket(
                    raw, server_side=True, do_handshake_on_connect=False
                )
            conn = _Connection(sock, None, handshaking=self._context is not None)
            conn.slot = self.slots.take(functools.partial(self._drop, conn))
            if conn.slot is None:
                log.debug("metrics: %s refused: every connection is being answered", address)
                sock.close()
                continue
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self._step(conn)  # its request may be here already; a hang-up frees the slot now

    def _step(self, conn: _Connection) -> None:
        try:
            if conn.handshaking:
                conn.sock.do_handshake()  # type: ignore[attr-defined]
                conn.handshaking = False
            if conn.outbox:
                self._write(conn)
            else:
                self._read(conn)
        except ssl.SSLWantReadError:
            self._wait(conn, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self._wait(conn, selectors.EVENT_WRITE)
        except (BlockingIOError, InterruptedError):
            self._wait(conn, selectors.EVENT_WRITE if conn.outbox else selectors.EVENT_READ)
        except (OSError, ssl.SSLError) as error:  # resets, failed handshakes: theirs
            log.debug("metrics: connection ended: %s", error)
            self._drop(conn)

    def _read(self, conn: _Connection) -> None:
        """Everything there is to read now (TLS may hold decrypted bytes the selector does
        not see), up to one request head; raises BlockingIOError or SSLWantReadError when
        the socket runs dry before the head is complete."""
        while True:
            chunk = conn.sock.recv(READ_CHUNK)
            if not chunk:
                self._drop(conn)
                return
            conn.inbox += chunk
            end = _HEAD_END.search(conn.inbox)
            if end is not None:
                break
            if len(conn.inbox) > MAX_REQUEST_BYTES:
                self._answer(conn, Response(431, b"request header fields too large\n"), False)
                return
        if end.start() > MAX_REQUEST_BYTES:
            self._answer(conn, Response(431, b"request header fields too large\n"), False)
            return
        try:
            request = parse_head(bytes(conn.inbox[: end.start()]))
        except BadRequest as error:
            self._answer(conn, Response(error.status, f"{error}\n".encode()), False)
            return
        conn.inbox.clear()
        if conn.slot is not None:
            self.slots.answering(conn.slot)
        self._answer(conn, self._respond(request), request.method == "HEAD")

    def _answer(self, conn: _Connection, response: Response, head_only: bool) -> None:
        conn.outbox = encode(response, head_only=head_only)
        if conn.slot is not None:
            self.slots.waiting(conn.slot, WRITE_DEADLINE)
        self._write(conn)

    def _write(self, conn: _Connection) -> None:
        while conn.sent < len(conn.outbox):
            conn.sent += conn.sock.send(conn.outbox[conn.sent : conn.sent + 65536])
        self._drop(conn)  # one request per connection

    def _wait(self, conn: _Connection, event: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.modify(conn.sock, event, conn)

    def _drop(self, conn: _Connection) -> None:
        if conn.slot is not None:
            self.slots.give_back(conn.slot)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()
