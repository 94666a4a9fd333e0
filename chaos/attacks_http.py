"""Attacks on the metrics endpoint, by a scraper on the network that has no credentials.

- header flood: 32 connections each sending 95 header lines of 64 KiB and never ending the
  request (the stdlib parser keeps them all before it looks at `Authorization`);
- slow headers: 32 connections sending one header line every 5 s (a per-receive timeout
  never fires);
- idle keep-alive: 32 connections that make one request and then sit on the connection;
- connection churn: connections opened and closed as fast as four threads can.

While each runs, a scraper fetches /metrics four times a second.
"""

from __future__ import annotations

import functools
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable

from chaos.lab import Daemon, rss
from chaos.session import Session
from chaos.verdict import Row, judge
from chaos.watch import Figures, Watch

CONNECTIONS = 32
HEADER_LINES = 95
HEADER_SIZE = 65000  # under the stdlib's 64 KiB line limit, as the attack was
SLOW_EVERY = 5.0

Attacker = Callable[[socket.socket, threading.Event], None]


def _connect(daemon: Daemon) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=5.0)
    if daemon.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock)
    return sock


class Crowd:
    """`count` attacker connections, each driven by `attacker` in its own thread until
    `stop()`; a connection the daemon drops is not reopened (`reconnect=False`)."""

    def __init__(self, daemon: Daemon, count: int, attacker: Attacker, *, reconnect: bool) -> None:
        self.daemon = daemon
        self.attacker = attacker
        self.reconnect = reconnect
        self.stopping = threading.Event()
        self.connections = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                sock = _connect(self.daemon)
            except OSError:
                self._count(dropped=True)
                self.stopping.wait(0.05)
                continue
            self._count(dropped=False)
            with sock:
                try:
                    self.attacker(sock, self.stopping)
                except OSError:
                    self._count(dropped=True)
            if not self.reconnect:
                return

    def _count(self, *, dropped: bool) -> None:
        with self._lock:
            if dropped:
                self.dropped += 1
            else:
                self.connections += 1

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(10)


def _hold(sock: socket.socket, stopping: threading.Event) -> None:
    """Keep the connection open, reading whatever comes, until the attack ends."""
    sock.settimeout(0.5)
    while not stopping.is_set():
        try:
            if not sock.recv(65536):
                raise ConnectionResetError("closed by the daemon")
        except TimeoutError:
            continue


def header_flood(sock: socket.socket, stopping: threading.Event) -> None:
    sock.settimeout(2.0)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    pad = b"a" * HEADER_SIZE
    for index in range(HEADER_LINES):
        if stopping.is_set():
            return
        sock.sendall(b"X-Pad-%d: %s\r\n" % (index, pad))
    _hold(sock, stopping)  # never the blank line that ends the request


def slow_headers(sock: socket.socket, stopping: threading.Event) -> None:
    sock.settimeout(2.0)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    index = 0
    while not stopping.wait(SLOW_EVERY):
        sock.sendall(b"X-Slow-%d: a\r\n" % index)
        index += 1


def idle_keepalive(sock: socket.socket, stopping: threading.Event) -> None:
    sock.settimeout(2.0)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
    stopping.wait()  # never reads the answer, never asks again, never closes


def churn(sock: socket.socket, stopping: threading.Event) -> None:
    """Connect and hang up at once: the accept loop's own cost."""


def run(
    name: str,
    daemon_of: Callable[[], Daemon],
    attacker: Attacker,
    seconds: float,
    *,
    count: int,
    reconnect: bool,
) -> Row:
    daemon = daemon_of()
    figures = Figures()
    with Watch(daemon, figures):
        time.sleep(0.5)  # a few scrapes before, as a baseline in the same window
        crowd = Crowd(daemon, count, attacker, reconnect=reconnect)
        time.sleep(seconds)
        figures.status_answered = daemon.answers(timeout=5.0)
        crowd.stop()
    time.sleep(2.0)
    figures.rss_after = rss(daemon.pid)
    figures.notes.append(f"{crowd.connections} connections, {crowd.dropped} dropped")
    return judge(Row(name, figures))


# name, attacker, seconds, connections, reconnect when dropped
TABLE: tuple[tuple[str, Attacker, float, int, bool], ...] = (
    ("32 x 95 headers of 64 KiB", header_flood, 8.0, CONNECTIONS, False),
    ("32 slow clients, a header/5 s", slow_headers, 11.0, CONNECTIONS, False),
    ("32 idle keep-alive clients", idle_keepalive, 8.0, CONNECTIONS, False),
    ("connection churn, 4 threads", churn, 5.0, 4, True),
)


def attacks(
    daemon_of: Callable[[], Daemon], label: str = ""
) -> list[tuple[str, Callable[[], Row]]]:
    """(name, run it) for each attack of the table, on the daemon `daemon_of()` gives."""
    found: list[tuple[str, Callable[[], Row]]] = []
    for what, attacker, seconds, count, reconnect in TABLE:
        name = f"metrics{label}: {what}"

        attack = functools.partial(
            run, name, daemon_of, attacker, seconds, count=count, reconnect=reconnect
        )
        found.append((name, attack))
    return found


def tls_daemon(session: Session) -> Daemon:
    """A daemon serving metrics over TLS behind basic auth (the attackers have neither)."""

    def settings() -> dict[str, object]:
        folder = session.folder("tls")
        cert, key, password = folder / "cert.pem", folder / "key.pem", folder / "password"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        key.chmod(0o600)
        password.write_text("chaos-secret\n")
        password.chmod(0o600)
        return {
            "metrics_tls_cert": str(cert),
            "metrics_tls_key": str(key),
            "metrics_basic_auth": {"user": "prometheus", "password_file": str(password)},
        }

    made: dict[str, object] = session.shared("tls-settings", settings)
    daemon = session.daemon("tls", settings=made)
    daemon.auth = ("prometheus", "chaos-secret")
    return daemon
