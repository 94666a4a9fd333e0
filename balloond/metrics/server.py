"""Serve the metrics over HTTP(S), optionally behind basic auth.

Defaults to 127.0.0.1:9877 (9177 belongs to the common libvirt exporters). For non-local
binds, give a certificate and key (TLS 1.2+) and basic-auth credentials: the exposition names
every domain on the host. The endpoint is reachable before authentication by anyone on the
network, so the HTTP side (`balloond.metrics.http`) bounds what any client can cost: a few
KiB per connection, a deadline per request, a fixed number of connections in which slow
clients make way for complete requests. Each request renders a scrape.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import logging
import socket
import ssl
from collections.abc import Callable

from prometheus_client.exposition import choose_encoder

from balloond.errors import ConfigError
from balloond.metrics.collector import Clock, families
from balloond.metrics.families import render_text
from balloond.metrics.http import MAX_CONNECTIONS, HttpServer, Request, Response
from balloond.view import DaemonView

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 9877

log = logging.getLogger(__name__)

BasicAuth = tuple[str, str]

# Rendered by balloond.metrics.families, not prometheus_client's encoders (too slow for
# 1,000 domains); prometheus_client's `choose_encoder` still does the Accept negotiation.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
INDEX = b'<html><body><a href="/metrics">balloond metrics</a></body></html>\n'


class Endpoint:
    """What the endpoint answers; the HTTP server calls `respond` on its thread."""

    def __init__(self, view: DaemonView, clock: Clock | None, basic_auth: BasicAuth | None) -> None:
        self.view = view
        self.clock = clock
        self.basic_auth = basic_auth

    def respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"only GET and HEAD\n", headers={"Allow": "GET, HEAD"})
        if self.basic_auth is not None and not check_basic_auth(
            request.headers.get("authorization"), self.basic_auth
        ):
            return Response(
                401,
                b"authentication required\n",
                headers={"WWW-Authenticate": 'Basic realm="balloond"'},
            )
        if request.path == "/metrics":
            return self._metrics(request)
        if request.path == "/":
            return Response(200, INDEX, "text/html; charset=utf-8")
        return Response(404, b"not found; metrics are at /metrics\n")

    def _metrics(self, request: Request) -> Response:
        openmetrics = choose_encoder(request.headers.get("accept", ""))[1].startswith(
            "application/openmetrics-text"
        )
        try:
            body = render_text(families(self.view, self.clock), openmetrics=openmetrics)
        except Exception:
            # A bug in the collector must not kill the server: Prometheus sees a 500 (its
            # `up` goes to 0, which the alerts watch) and the log says why.
            log.exception("metrics: collecting failed")
            return Response(500, b"collecting metrics failed; see the daemon log\n")
        headers = {}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        return Response(200, body, content_type, headers)


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


class MetricsServer:
    """A running metrics endpoint. `port` is the bound port (useful with port 0)."""

    def __init__(self, listener: socket.socket, http: HttpServer, scheme: str) -> None:
        address = listener.getsockname()
        self.address: str = str(address[0])
        self.port: int = int(address[1])
        self.scheme = scheme
        self._http = http

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._http.close()

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
    listener = _bind(address, port)
    if basic_auth is not None and context is None and address not in ("127.0.0.1", "::1"):
        log.warning("metrics: basic auth on %s without TLS sends the password in clear", address)
    # The TLS handshake runs in the server's loop, step by step as bytes arrive: one silent
    # client costs a slot until its deadline, never a blocked thread.
    http = HttpServer(listener, Endpoint(view, clock, basic_auth).respond, context)
    return MetricsServer(listener, http, "https" if context else "http")


def _bind(address: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ConfigError(f"metrics port must be 0-65535, got: {port}")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        # A backlog for bursts: the stdlib's 5 made them wait on SYN retries.
        listener.listen(2 * MAX_CONNECTIONS)
    except OSError as exc:
        listener.close()
        raise ConfigError(f"metrics: cannot listen on {address}:{port}: {exc}") from exc
    return listener
