"""The metrics endpoint (HTTP, TLS, basic auth) and the node_exporter textfile writer."""

from __future__ import annotations

import base64
import gzip
import os
import shutil
import socket
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from balloond.errors import ConfigError
from balloond.metrics import serve, write_textfile
from balloond.metrics.server import check_basic_auth
from balloond.metrics.static import StaticView
from balloond.model import DomainSnapshot, HostSnapshot, Snapshot
from balloond.units import GiB

NOW = 2_000_000.0
CLIENT_TIMEOUT = 20  # only so a broken server fails the test instead of hanging it


def view() -> StaticView:
    dom = DomainSnapshot("web1", "u-web1", current=GiB, maxmem=2 * GiB)
    return StaticView(
        uri="test:///default",
        reserve=GiB,
        snapshot=Snapshot(NOW, HostSnapshot(total=8 * GiB, free=4 * GiB), (dom,)),
    )


def get(
    url: str,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    method: str = "GET",
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT, context=context) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def server() -> Iterator[str]:
    running = serve(view(), "127.0.0.1", 0, clock=lambda: NOW)
    try:
        yield f"http://127.0.0.1:{running.port}"
    finally:
        running.close()


def test_serves_text_exposition(server: str) -> None:
    status, headers, body = get(server + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert "balloond_domain_current_bytes" in families


def test_serves_openmetrics_when_asked(server: str) -> None:
    status, headers, body = get(
        server + "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b"_created" not in body


def test_compresses_for_clients_that_accept_gzip(server: str) -> None:
    status, headers, body = get(server + "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert b"balloond_host_free_bytes" in gzip.decompress(body)


def test_index_head_and_unknown_paths(server: str) -> None:
    assert get(server + "/")[0] == 200
    assert b'href="/metrics"' in get(server + "/")[2]
    assert get(server + "/metrics?foo=bar")[0] == 200
    status, headers, body = get(server + "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert get(server + "/../etc/passwd")[0] == 404
    assert get(server + "/metricsx")[0] == 404


def test_a_silent_client_does_not_block_scrapes(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)):
        assert get(server + "/metrics")[0] == 200


def test_a_failing_collector_gives_500_and_the_server_survives() -> None:
    class Broken(StaticView):
        def last_snapshot(self) -> Snapshot | None:
            raise RuntimeError("bug")

    running = serve(Broken(uri="x", reserve=0), "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{running.port}/metrics"
        assert get(url)[0] == 500
        assert get(url)[0] == 500  # still answering
    finally:
        running.close()


def test_close_releases_the_port() -> None:
    running = serve(view(), "127.0.0.1", 0)
    port = running.port
    running.close()
    again = serve(view(), "127.0.0.1", port)
    again.close()


def test_port_in_use_is_a_config_error_naming_the_address() -> None:
    running = serve(view(), "127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{running.port}"):
            serve(view(), "127.0.0.1", running.port)
    finally:
        running.close()


@pytest.mark.parametrize("port", [-1, 65536, 10**6])
def test_port_out_of_range(port: int) -> None:
    with pytest.raises(ConfigError, match=str(port)):
        serve(view(), "127.0.0.1", port)


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        running = serve(view(), "::1", 0)
    except ConfigError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    try:
        assert running.url == f"http://[::1]:{running.port}/metrics"
        assert get(running.url)[0] == 200
    finally:
        running.close()


# -- basic auth ---------------------------------------------------------------------------


@pytest.fixture
def guarded() -> Iterator[str]:
    running = serve(view(), "127.0.0.1", 0, basic_auth=("prometheus", "s3cr:et é"))
    try:
        yield f"http://127.0.0.1:{running.port}/metrics"
    finally:
        running.close()


def test_basic_auth_accepts_the_right_credentials(guarded: str) -> None:
    assert get(guarded, basic("prometheus", "s3cr:et é"))[0] == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("prometheus", "wrong"),
        basic("root", "s3cr:et é"),
        basic("prometheus", ""),
        basic("prometheus", "s3cr:et é" + "x"),
        {"Authorization": "Basic !!!not-base64!!!"},
        {"Authorization": "Bearer " + base64.b64encode(b"prometheus:s3cr:et").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon-at-all").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
    ],
)
def test_basic_auth_refuses_everything_else(guarded: str, headers: dict[str, str]) -> None:
    status, answer, body = get(guarded, headers)
    assert status == 401
    assert answer["WWW-Authenticate"] == 'Basic realm="balloond"'
    assert b"balloond_" not in body


def test_check_basic_auth_on_hostile_headers() -> None:
    expected = ("u", "p")
    assert check_basic_auth("Basic " + base64.b64encode(b"u:p").decode(), expected)
    assert check_basic_auth("basic dTpw", expected)  # the scheme is case-insensitive
    for header in (
        None,
        "",
        "Basic",
        "Basic ",
        "Basic dTpx",
        "Basicd Tpw",
        "Basic \x00",
        "Digest dTpw",
        "Basic dTpw dTpw",
        "Basic " + "A" * 100_000,
    ):
        assert not check_basic_auth(header, expected)


@pytest.mark.parametrize("credentials", [("", "p"), ("u", "")])
def test_empty_credentials_are_refused(credentials: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match="basic auth"):
        serve(view(), "127.0.0.1", 0, basic_auth=credentials)


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed; cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return str(cert), str(key)


def trusting(cert: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cert)
    return context


def test_tls_serves_to_a_client_that_trusts_the_certificate(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    running = serve(view(), "127.0.0.1", 0, tls_cert=cert, tls_key=key)
    try:
        assert running.url.startswith("https://")
        status, _, body = get(running.url, context=trusting(cert))
        assert status == 200 and b"balloond_domain_current_bytes" in body
        # An unverified client must fail the handshake rather than get data.
        with pytest.raises(urllib.error.URLError):
            get(running.url, context=ssl.create_default_context())
        # Plain HTTP to the TLS port gets no exposition.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            get(f"http://127.0.0.1:{running.port}/metrics")
        assert get(running.url, context=trusting(cert))[0] == 200
    finally:
        running.close()


def test_tls_with_basic_auth(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    running = serve(view(), "127.0.0.1", 0, tls_cert=cert, tls_key=key, basic_auth=("p", "q"))
    try:
        assert get(running.url, context=trusting(cert))[0] == 401
        assert get(running.url, basic("p", "q"), context=trusting(cert))[0] == 200
    finally:
        running.close()


def test_tls_silent_client_does_not_block_the_handshake_of_others(
    certificate: tuple[str, str],
) -> None:
    cert, key = certificate
    running = serve(view(), "127.0.0.1", 0, tls_cert=cert, tls_key=key)
    try:
        with socket.create_connection(("127.0.0.1", running.port)):
            assert get(running.url, context=trusting(cert))[0] == 200
    finally:
        running.close()


def test_tls_needs_both_halves(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    with pytest.raises(ConfigError, match="both a certificate and a key"):
        serve(view(), "127.0.0.1", 0, tls_cert=cert)
    with pytest.raises(ConfigError, match="both a certificate and a key"):
        serve(view(), "127.0.0.1", 0, tls_key=key)


def test_unreadable_certificate_is_a_config_error_naming_it(tmp_path: Path) -> None:
    bogus = tmp_path / "cert.pem"
    bogus.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    with pytest.raises(ConfigError, match=r"cert\.pem"):
        serve(view(), "127.0.0.1", 0, tls_cert=str(bogus), tls_key=str(bogus))
    with pytest.raises(ConfigError, match=r"missing\.pem"):
        serve(view(), "127.0.0.1", 0, tls_cert=str(tmp_path / "missing.pem"), tls_key=str(bogus))


# -- textfile -----------------------------------------------------------------------------


def test_textfile_is_written_whole_and_readable_by_others(tmp_path: Path) -> None:
    target = tmp_path / "balloond.prom"
    write_textfile(view(), target, clock=lambda: NOW)
    text = target.read_text()
    families = {f.name for f in text_string_to_metric_families(text)}
    assert "balloond_host_free_bytes" in families
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["balloond.prom"]


def test_textfile_replaces_the_previous_one(tmp_path: Path) -> None:
    target = tmp_path / "balloond.prom"
    target.write_text("previous_content_marker 1\n")
    write_textfile(view(), target)
    assert "previous_content_marker" not in target.read_text()


def test_textfile_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    class Broken(StaticView):
        def telemetry(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug")

    target = tmp_path / "balloond.prom"
    target.write_text("old 1\n")
    with pytest.raises(RuntimeError):
        write_textfile(Broken(uri="x", reserve=0), target)
    assert target.read_text() == "old 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["balloond.prom"]


def test_textfile_must_end_in_prom(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"balloond\.txt.*\.prom"):
        write_textfile(view(), tmp_path / "balloond.txt")


def test_textfile_in_a_missing_folder_fails_without_creating_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_textfile(view(), tmp_path / "nope" / "balloond.prom")
    assert not (tmp_path / "nope").exists()


GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello to plain HTTP
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",  # a huge request line
    b"GET /metrics HTTP/1.1\r\nX: " + b"b" * 70000 + b"\r\n\r\n",  # a huge header
    b"\r\n\r\n",
    b"POST /metrics HTTP/1.1\r\n\r\n",
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_requests_get_no_metrics_and_the_server_survives(
    server: str, garbage: bytes
) -> None:
    port = int(server.rsplit(":", 1)[1])
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as raw:
        try:
            raw.sendall(garbage)
            raw.shutdown(socket.SHUT_WR)
            while chunk := raw.recv(65536):
                answer += chunk
        except OSError:
            pass  # the server hung up on an oversized request before reading all of it
    assert b"balloond_" not in answer
    assert get(server + "/metrics")[0] == 200


def _port(server: str) -> int:
    return int(server.rsplit(":", 1)[1])


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` within `within` seconds (reading what it sent)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True  # reset: closed with our bytes unread
    return True


def test_idle_connections_make_room_for_a_scrape(server: str) -> None:
    flood = [socket.create_connection(("127.0.0.1", _port(server))) for _ in range(32)]
    try:
        # Every slot is held by a connection that has sent nothing: the scrape sheds the
        # oldest of them and is answered.
        assert get(server + "/metrics")[0] == 200
        assert _closed_by_server(flood[0], CLIENT_TIMEOUT)
    finally:
        for conn in flood:
            conn.close()


def test_slow_clients_do_not_keep_scrapes_out(server: str) -> None:
    """Issue 16: 32 clients each sending a header line every few seconds blocked every
    scrape (the timeout was per receive)."""
    slow = []
    try:
        for _ in range(32):
            conn = socket.create_connection(("127.0.0.1", _port(server)))
            conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            slow.append(conn)
        for conn in slow:
            conn.sendall(b"X-Slow: 1\r\n")
        for _ in range(3):
            assert get(server + "/metrics")[0] == 200
    finally:
        for conn in slow:
            conn.close()


def test_a_request_has_a_deadline_not_a_timeout_per_receive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from balloond.metrics import http

    monkeypatch.setattr(http, "REQUEST_DEADLINE", 0.5)
    running = serve(view(), "127.0.0.1", 0)
    try:
        with socket.create_connection(("127.0.0.1", running.port)) as drip:
            drip.sendall(b"GET /metrics HTTP/1.1\r\n")
            closed = False
            for index in range(50):  # a header line every 0.1 s for up to 5 s
                try:
                    drip.sendall(b"X-Drip-%d: 1\r\n" % index)
                except OSError:
                    closed = True
                    break
                if _closed_by_server(drip, 0.1):
                    closed = True
                    break
            assert closed, "a client sending a header line every 0.1 s was never cut off"
    finally:
        running.close()


def test_oversized_headers_are_refused_before_they_are_read(server: str) -> None:
    """Issue 16: 95 header lines of 64 KiB were all parsed (and kept) before the server
    looked at Authorization; 32 such connections took the daemon to 1.2 GB."""
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=CLIENT_TIMEOUT) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\n")
        sent = 0
        try:
            for index in range(95):
                conn.sendall(b"X-Pad-%d: %s\r\n" % (index, b"a" * 65000))
                sent += 65000
        except OSError:
            pass  # the server hung up
        assert sent < 95 * 65000, "the server read every header"


def test_one_request_per_connection(server: str) -> None:
    """An idle keep-alive client held a thread (and a slot) until its timeout."""
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=CLIENT_TIMEOUT) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in answer
    assert b"balloond_domain_current_bytes" in answer


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /metrics HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /metrics\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\n folded: header\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"400"),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", b"405"),
        (b"GET /metrics HTTP/1.0\n\n", b"200"),
    ],
)
def test_request_heads(server: str, request_head: bytes, status: bytes) -> None:
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=CLIENT_TIMEOUT) as conn:
        conn.sendall(request_head)
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 " + status)


def test_a_key_or_password_others_can_read_is_warned_about(
    certificate: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16: TLS key and password files readable by others were accepted silently."""
    from balloond.config import DaemonConfig, MetricsAuth
    from balloond.daemon.loop import LoopSettings
    from balloond.daemon.runconfig import RunConfig

    cert, original_key = certificate
    key = tmp_path / "key.pem"
    shutil.copy(original_key, key)
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    config = DaemonConfig(
        metrics_port=0,
        metrics_tls_cert=cert,
        metrics_tls_key=str(key),
        metrics_basic_auth=MetricsAuth(user="prometheus", password_file=str(password)),
    )
    run = RunConfig(
        config=config,
        log_level="info",
        uri="test:///default",
        settings=LoopSettings(),
        policy_dir=tmp_path,
        state_dir=tmp_path,
        control_socket=tmp_path / "c.sock",
    )
    for mode, warned in ((0o600, False), (0o640, False), (0o644, True)):
        key.chmod(mode)
        password.chmod(mode)
        caplog.clear()
        with run.serve_metrics(view()):
            pass
        lines = [
            r.getMessage() for r in caplog.records if "readable by every user" in r.getMessage()
        ]
        assert len(lines) == (2 if warned else 0), (oct(mode), lines)
    assert f"metrics_tls_key {key} is readable by every user on this host (mode 644)" in lines[0]
