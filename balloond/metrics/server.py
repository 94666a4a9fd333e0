"""Serve the metrics over HTTP(S), optionally behind basic auth.

Defaults to 127.0.0.1:9877 (9177 belongs to the common libvirt exporters). For non-local
binds, give a certificate and key (TLS 1.2+) and basic-auth credentials: the exposition names
every domain on the host. One small threaded stdlib server; each request renders a scrape.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import choose_encoder

from balloond.errors import ConfigError
from balloond.metrics.collector import Clock, families
from balloond.metrics.families import render_text
from balloond.view import DaemonView

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 9877
# A client that has not sent its request within this many seconds is dropped, so a stalled
# or hostile client cannot hold a server thread (or, under TLS, the handshake) forever.
REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 32  # Prometheus needs one per scraping server; more is a flood

log = logging.getLogger(__name__)

BasicAuth = tuple[str, str]

# Rendered by balloond.metrics.families, not prometheus_client's encoders (too slow for
# 1,000 domains); prometheus_client's `choose_encoder` still does the Accept negotiation.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsHTTPServer
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if not self._authorised():
            self._reply(
                401,
                b"authentication required\n",
                "text/plain; charset=utf-8",
                {"WWW-Authenticate": 'Basic realm="balloond"'},
            )
            return
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/":
            self._reply(
                200,
                b'<html><body><a href="/metrics">balloond metrics</a></body></html>\n',
                "text/html; charset=utf-8",
            )
        else:
            self._reply(404, b"not found; metrics are at /metrics\n", "text/plain; charset=utf-8")

    do_HEAD = do_GET

    def _metrics(self) -> None:
        openmetrics = choose_encoder(self.headers.get("Accept", ""))[1].startswith(
            "application/openmetrics-text"
        )
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        try:
            with self.server.render_lock:
                body = render_text(
                    families(self.server.view, self.server.clock), openmetrics=openmetrics
                )
        except Exception:
            # A bug in the collector must not kill the server: Prometheus sees a 500 (its
            # `up` goes to 0, which the alerts watch) and the log says why.
            log.exception("metrics: collecting failed")
            self._reply(
                500, b"collecting metrics failed; see the daemon log\n", "text/plain; charset=utf-8"
            )
            return
        headers = {}
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._reply(200, body, content_type, headers)

    def _authorised(self) -> bool:
        expected = self.server.basic_auth
        if expected is None:
            return True
        return check_basic_auth(self.headers.get("Authorization"), expected)

    def _reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: %s " + format, self.address_string(), *args)


def check_basic_auth(header: str | None, expected: BasicAuth) -> bool:
    """Constant-time comparison of an untrusted Authorization header with (user, password)."""
    if header is None:
        return False
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":  # the scheme is case-insensitive (RFC 7617)
        return False
    try:
        untrusted = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = untrusted.partition(":")
    if not sep:
        return False
    # Compare both halves even when the first differs, so timing says nothing about which.
    ok_user = hmac.compare_digest(user.encode(), expected[0].encode())
    ok_password = hmac.compare_digest(password.encode(), expected[1].encode())
    return ok_user and ok_password


class _MetricsHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # listen() backlog; the stdlib's 5 makes bursts wait on SYN retries
    view: DaemonView
    clock: Clock | None
    basic_auth: BasicAuth | None

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        # One render at a time: parallel scrapes would only multiply the CPU taken from the
        # daemon's tick (they share the GIL) and the memory of 1,000-domain expositions.
        self.render_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            # A flood of connections gets closed rather than a thread each.
            log.debug("metrics: %s refused: %d connections open", client_address, MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed TLS handshakes, resets and timeouts are the client's problem: one debug
        # line, not the stdlib's traceback on stderr.
        log.debug("metrics: request from %s failed", client_address, exc_info=True)


class _MetricsHTTPServer6(_MetricsHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """A running metrics endpoint. `port` is the bound port (useful with port 0)."""

    def __init__(self, httpd: _MetricsHTTPServer, scheme: str) -> None:
        self._httpd = httpd
        self.address: str = str(httpd.server_address[0])
        self.port: int = int(httpd.server_address[1])
        self.scheme = scheme
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="balloond-metrics",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"metrics TLS: cannot load certificate {cert!r} with key {key!r}: {exc}"
        ) from exc
    return context


def serve(
    view: DaemonView,
    address: str = DEFAULT_ADDRESS,
    port: int = DEFAULT_PORT,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    basic_auth: BasicAuth | None = None,
    clock: Callable[[], float] | None = None,
) -> MetricsServer:
    """Start serving `view`'s metrics on address:port in a background thread.

    Raises ConfigError for a half-given TLS pair, empty credentials, unreadable certificates
    or an address that cannot be bound."""
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError(
            f"metrics TLS needs both a certificate and a key, got cert={tls_cert!r} key={tls_key!r}"
        )
    if basic_auth is not None and not (basic_auth[0] and basic_auth[1]):
        raise ConfigError("metrics basic auth needs a non-empty user name and password")
    context = tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
    httpd = _bind(address, port)
    httpd.view = view
    httpd.clock = clock
    httpd.basic_auth = basic_auth
    if context is not None:
        # No handshake in accept(): it would run on the serving thread, where one silent
        # client would block every scrape. It happens on first read, in the request thread.
        httpd.socket = context.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
    if basic_auth is not None and context is None and address not in ("127.0.0.1", "::1"):
        log.warning("metrics: basic auth on %s without TLS sends the password in clear", address)
    return MetricsServer(httpd, "https" if context else "http")


def _bind(address: str, port: int) -> _MetricsHTTPServer:
    if not 0 <= port <= 65535:
        raise ConfigError(f"metrics port must be 0-65535, got: {port}")
    server_class = _MetricsHTTPServer6 if ":" in address else _MetricsHTTPServer
    try:
        return server_class((address, port), _Handler)
    except OSError as exc:
        raise ConfigError(f"metrics: cannot listen on {address}:{port}: {exc}") from exc
