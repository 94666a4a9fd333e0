"""`balloond demo` and `balloond run` end to end, in subprocesses (they own signals, logging
and threads, as they do in production); `balloonctl` against the running demo."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from balloond.cli.ctl import main as balloonctl
from tests.support.daemon import HOST_XML

ENTRY = "import sys; from balloond.cli.daemon import main; sys.exit(main())"


# Whatever runs the tests may itself be a systemd service: the children must not notify it.
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
}


def balloond(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    kwargs.setdefault("env", CLEAN_ENV)
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


class Output:
    """Collects a child's output lines on a thread, so the pipe never fills."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: TextIO) -> None:
        with stream:
            for line in stream:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        regex = re.compile(pattern)
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(regex.search(line) for line in self.lines), timeout
            )
        assert found, f"no line matching {pattern!r} in:\n" + "\n".join(self.lines)
        match = next(regex.search(line) for line in self.lines if regex.search(line))
        assert match is not None
        return match

    def text(self) -> str:
        self._thread.join(timeout=30)
        return "\n".join(self.lines)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output, Path]]:
    sock = tmp_path / "demo" / "control.sock"
    process = balloond(
        "demo", "--duration", "60s", "--port", "0", "--interval", "0.5s", "--socket", str(sock)
    )
    output = Output(process)
    try:
        yield process, output, sock
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_demo_runs_for_its_duration_serving_metrics() -> None:
    process = balloond("demo", "--duration", "3s", "--port", "0")
    output = Output(process)
    url = output.wait_for(r"metrics:\s+(http://127\.0\.0\.1:\d+/metrics)").group(1)
    body = ""
    # Scrape at once and until the first tick shows: the demo only lives for 3 s.
    while process.poll() is None and 'domain="web"' not in body:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
    output.wait_for(r"^\d\d:\d\d:\d\d (grow|shrink) \w+ ")  # a decision was printed
    assert process.wait(timeout=60) == 0, output.text()
    assert re.search(r'^balloond_domain_target_bytes\{domain="web"\} \d', body, re.M), body[:2000]
    assert re.search(r"^balloond_ticks_total [1-9]", body, re.M) or "balloond_tick" in body
    text = output.text()
    assert "balloond: stopped after" in text
    assert re.search(r"(grow|shrink) \w+ [\d.]+ [KMG]iB → [\d.]+ [KMG]iB: ", text), text


def test_demo_stops_gracefully_on_sigterm(
    demo: tuple[subprocess.Popen[str], Output, Path],
) -> None:
    process, output, sock = demo
    output.wait_for(r"connected to sim://default")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert "SIGTERM: stopping" in output.text()
    assert not sock.exists(), "the control socket is removed on the way out"


def test_balloonctl_talks_to_the_running_demo(
    demo: tuple[subprocess.Popen[str], Output, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, output, sock = demo
    output.wait_for(r"(grow|shrink) ")
    assert balloonctl(["list", "--socket", str(sock), "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert "computed now" not in captured.err
    assert {r["name"] for r in rows} == {"idle", "web", "leak", "batch", "cache", "legacy"}
    for row in rows:
        assert row["floor"] <= row["target"] <= row["maxmem"], row

    assert balloonctl(["list", "--socket", str(sock)]) == 0
    table = capsys.readouterr().out.splitlines()
    # xm list's six columns first, in xm's order, then balloond's.
    assert table[0].split()[:8] == [
        "Name",
        "ID",
        "Mem",
        "VCPUs",
        "State",
        "Time(s)",
        "MaxMem",
        "Target",
    ]
    assert any(line.startswith("web ") and "r-----" in line for line in table)

    assert balloonctl(["explain", "web", "--socket", str(sock)]) == 0
    text = capsys.readouterr().out
    assert "Policy " in text and "chosen by" in text and "Decision:" in text

    assert balloonctl(["status", "--socket", str(sock), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["uri"] == "sim://default" and status["connected"] is True

    assert balloonctl(["release", "web", "--socket", str(sock)]) == 0
    assert "nothing to release" in capsys.readouterr().out

    assert balloonctl(["explain", "nosuch", "--socket", str(sock)]) == 1
    assert "'nosuch' is not known to the daemon" in capsys.readouterr().err


def test_balloonctl_computes_when_no_daemon_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = str(tmp_path / "none.sock")
    assert balloonctl(["list", "--connect", "sim://default", "--socket", sock, "--json"]) == 0
    captured = capsys.readouterr()
    assert "daemon not running; computed now" in captured.err
    assert len(json.loads(captured.out)) == 6
    assert balloonctl(["explain", "web", "--connect", "sim://default", "--socket", sock]) == 0
    assert "chosen by" in capsys.readouterr().out
    assert balloonctl(["explain", "nosuch", "--connect", "sim://default", "--socket", sock]) == 1
    # Not "is not running", as if it existed: only running domains are seen here.
    assert "'nosuch' not found among the running domains on sim://default" in (
        capsys.readouterr().err
    )
    assert balloonctl(["status", "--socket", sock]) == 4
    assert "not running" in capsys.readouterr().err


@pytest.mark.libvirt
def test_balloonctl_list_on_the_libvirt_test_driver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("libvirt")
    sock = str(tmp_path / "none.sock")
    uri = f"test://{HOST_XML}"
    assert balloonctl(["list", "--connect", uri, "--socket", sock, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"big1", "big2", "big3"}
    assert all(r["mem"] == r["maxmem"] for r in rows), "computing moved nothing"


def _config(tmp_path: Path) -> Path:
    """A daemon config that keeps everything the daemon writes inside the test's folder."""
    config = tmp_path / "balloond.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\ncontrol_socket: {tmp_path / 'control.sock'}\n"
        f"policy_dir: {tmp_path / 'policies'}\n"
    )
    return config


def test_run_once_dry_run_on_the_simulated_host(tmp_path: Path) -> None:
    policies = Path(__file__).resolve().parent.parent / "policies"
    process = balloond(
        "run",
        "--once",
        "--dry-run",
        "--connect",
        "sim://default",
        "--config",
        str(_config(tmp_path)),
        "--policy-dir",
        str(policies),
    )
    output = Output(process)
    assert process.wait(timeout=60) == 0, output.text()
    text = output.text()
    assert re.search(r"\[dry-run\] (grow|shrink) \w+ ", text) or "nothing to change" in text


@pytest.mark.libvirt
def test_run_once_on_the_libvirt_test_driver(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "cap.yaml").write_text(
        "policies:\n  - name: capped\n    match: {names: ['big*']}\n    ceiling: 50%\n"
    )
    process = balloond(
        "run",
        "--once",
        "--config",
        str(_config(tmp_path)),
        "--connect",
        f"test://{HOST_XML}",
        "--policy-dir",
        str(policies),
    )
    output = Output(process)
    assert process.wait(timeout=60) == 0, output.text()
    text = output.text()
    assert "shrink big1 4 GiB → 2 GiB: no usable data; to the ceiling" in text, text
    assert (tmp_path / "state" / "state.json").exists()


def test_run_refuses_a_broken_policy_folder_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("policies:\n  - name: x\n    floor: lots\n")
    process = balloond(
        "run",
        "--once",
        "--connect",
        "sim://default",
        "--policy-dir",
        str(tmp_path),
        "--config",
        str(_config(tmp_path)),
    )
    output = Output(process)
    assert process.wait(timeout=60) == 2
    assert f"{tmp_path / 'bad.yaml'}:3: floor" in output.text()


def test_run_rejects_a_bad_interval(tmp_path: Path) -> None:
    process = balloond(
        "run",
        "--once",
        "--connect",
        "sim://default",
        "--interval",
        "soon",
        "--config",
        str(_config(tmp_path)),
    )
    output = Output(process)
    assert process.wait(timeout=60) == 2
    assert "--interval" in output.text()


def test_every_option_is_explained_in_help() -> None:
    for command in ("run", "demo"):
        process = balloond(command, "--help", env={**CLEAN_ENV, "COLUMNS": "200"})
        output = Output(process)
        assert process.wait(timeout=60) == 0
        text = output.text()
        options = re.findall(r"^\s+(--[\w-]+)( \w+)?\s{2,}(\S.*)$", text, re.M)
        assert len(options) >= 5, text
        assert all(len(helptext) > 10 for _, _, helptext in options), options


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_run_as_a_service_notifies_systemd_reloads_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    port = _free_port()
    config.write_text(config.read_text() + f"metrics_port: {port}\ninterval: 0.5s\n")
    (tmp_path / "policies").mkdir()
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(60)
        env = {**CLEAN_ENV, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "2000000"}
        process = balloond("run", "--config", str(config), "--connect", "sim://default", env=env)
        output = Output(process)
        try:
            ready = notify.recv(4096).decode()
            assert "READY=1" in ready.splitlines(), ready
            assert re.search(r"STATUS=6 domains, \d+ adjusted last tick", ready), ready
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert b"balloond_domain_current_bytes" in response.read()
            sock = str(tmp_path / "control.sock")
            assert balloonctl(["status", "--socket", sock, "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["policies"] == ["default"]

            (tmp_path / "policies" / "web.yaml").write_text(
                "policies:\n  - name: web\n    match: {names: [web]}\n    floor: 1GiB\n"
            )
            process.send_signal(signal.SIGHUP)
            output.wait_for(r"policies reloaded from .*: 1 policies \(web\)")
            messages = {notify.recv(4096).decode() for _ in range(4)}
            assert any("WATCHDOG=1" in m for m in messages), messages
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
        assert code == 0, output.text()
    assert (tmp_path / "state" / "state.json").exists()
    assert not (tmp_path / "control.sock").exists()


@pytest.mark.libvirt
def test_run_once_on_an_unreachable_host_says_why_and_exits_4(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    # Port 1 on loopback: nothing listens there, the refusal is immediate and local.
    process = balloond(
        "run",
        "--once",
        "--config",
        str(_config(tmp_path)),
        "--connect",
        "qemu+tcp://127.0.0.1:1/system",
    )
    output = Output(process)
    assert process.wait(timeout=60) == 4
    text = output.text()
    assert "cannot connect to 'qemu+tcp://127.0.0.1:1/system'" in text and "retrying" not in text


@pytest.mark.libvirt
def test_balloonctl_computes_for_another_uri_than_the_daemons(
    demo: tuple[subprocess.Popen[str], Output, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("libvirt")
    _, output, sock = demo
    output.wait_for(r"connected to sim://default")
    uri = f"test://{HOST_XML}"
    assert balloonctl(["list", "--socket", str(sock), "--connect", uri, "--json"]) == 0
    captured = capsys.readouterr()
    assert {r["name"] for r in json.loads(captured.out)} == {"big1", "big2", "big3"}
    assert f"balloond manages sim://default, not {uri}; computed now" in captured.err
    # A domain the daemon does not know, on a host the daemon does not manage: computed.
    assert balloonctl(["explain", "big1", "--socket", str(sock), "--connect", uri]) == 0
    assert "chosen by" in capsys.readouterr().out
    # --connect naming the daemon's own URI asks the daemon.
    assert balloonctl(["list", "--socket", str(sock), "--connect", "sim://default"]) == 0
    assert "computed now" not in capsys.readouterr().err
