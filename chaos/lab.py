"""A real `balloond run` started for the attacks, and the ways to reach it from outside.

The daemon runs as a child process in a private folder (config, policies, state, control
socket, node_exporter textfile, log), on loopback. It is talked to with plain sockets, not
with balloond's own client, so the harness measures any tree (`--tree` runs the daemon from
another checkout: that is how the figures "before" a fix were taken).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHIPPED_POLICIES = REPO / "policies"
RUN_DAEMON = "import sys; from balloond.cli.daemon import main; sys.exit(main(sys.argv[1:]))"
RUN_CTL = "import sys; from balloond.cli.ctl import main; sys.exit(main(sys.argv[1:]))"


class NotReady(RuntimeError):
    """The daemon did not come up (its log tail is in the message)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(tree: Path | None) -> dict[str, str]:
    """The environment of a balloond or balloonctl child: another tree's package first."""
    env = dict(os.environ)
    env.pop("BALLOOND_CONFIG", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


class Daemon:
    """One `balloond run`, its folder and its endpoints. Stop it with `stop()` (by pid)."""

    def __init__(
        self,
        folder: Path,
        uri: str,
        *,
        tree: Path | None = None,
        interval: float = 0.5,
        settings: Mapping[str, object] | None = None,
        policies: Path | None = SHIPPED_POLICIES,
    ) -> None:
        self.folder = folder
        self.uri = uri
        self.tree = tree
        self.interval = interval
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.port = free_port()
        self.socket = folder / "run" / "control.sock"
        self.textfile = folder / "tick.prom"
        self.state_dir = folder / "state"
        self.policy_dir = folder / "policies"
        self.config = folder / "balloond.yaml"
        self.log = folder / "daemon.log"
        self.scheme = "http"
        self.auth: tuple[str, str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        if policies is not None and not self.policy_dir.exists():
            shutil.copytree(policies, self.policy_dir)
        self.policy_dir.mkdir(exist_ok=True)
        values: dict[str, object] = {
            "uri": uri,
            "interval": f"{interval}s",
            "reserve": "1GiB",
            "metrics_address": "127.0.0.1",
            "metrics_port": self.port,
            "textfile": str(self.textfile),
            "policy_dir": str(self.policy_dir),
            "state_dir": str(self.state_dir),
            "control_socket": str(self.socket),
        }
        values.update(settings or {})
        if values.get("metrics_tls_cert"):
            self.scheme = "https"
        self.config.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items()))

    # -- life -------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise NotReady("the daemon was not started")
        return self.proc.pid

    def start(self, *, wait: bool = True, timeout: float = 20.0) -> Daemon:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", RUN_DAEMON, "run", "--config", str(self.config)],
                cwd=self.folder,
                env=child_env(self.tree),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready(timeout)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        """Until `status` answers and a tick has written the textfile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise NotReady(f"balloond exited early:\n{self.log_tail()}")
            if self.last_tick() is not None and self.answers(timeout=1.0):
                return
            time.sleep(0.1)
        raise NotReady(f"balloond not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait(10)

    def kill9(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(10)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- endpoints ----------------------------------------------------------------------------

    def call(self, cmd: str, *, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
        """One control request; the daemon's whole answer ({"ok": ..., ...})."""
        line = json.dumps({"cmd": cmd, **args}).encode() + b"\n"
        return control_request(self.socket, line, timeout)

    def answers(self, timeout: float = 5.0) -> bool:
        try:
            return bool(self.call("status", timeout=timeout).get("ok"))
        except (OSError, ValueError):
            return False

    def scrape(self, timeout: float = 10.0) -> str:
        return scrape(self.scheme, self.port, self.auth, timeout)

    def last_tick(self) -> float | None:
        """The end of the last tick, from the textfile the daemon writes after each one."""
        try:
            text = self.textfile.read_text()
        except OSError:
            return None
        values = metric_values(text, "balloond_last_tick_timestamp_seconds")
        return values[0] if values else None

    def rows(self) -> list[dict[str, Any]]:
        answer = self.call("list")
        return list(answer.get("result", {}).get("rows", []))

    def balloonctl(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-c", RUN_CTL, *argv],
            cwd=self.folder,
            env=child_env(self.tree),
            capture_output=True,
            timeout=timeout,
            check=False,
        )


def control_request(path: Path, line: bytes, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(line)
        data = b""
        while not data.endswith(b"\n"):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ValueError(f"not a JSON object: {data[:80]!r}")
    return answer


def scrape(scheme: str, port: int, auth: tuple[str, str] | None, timeout: float) -> str:
    conn: http.client.HTTPConnection
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {}
    if auth is not None:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"scrape answered {response.status}")
        return body.decode()
    finally:
        conn.close()


def metric_values(text: str, name: str, labels: str = "") -> list[float]:
    """The values of a series in an exposition (`labels`: a substring of its label set)."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        base = key.split("{", 1)[0]
        if base == name and labels in key:
            with contextlib.suppress(ValueError):
                found.append(float(value))
    return found


def rss(pid: int) -> int | None:
    """Resident memory of a process, bytes (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextlib.contextmanager
def scratch(prefix: str = "balloond-chaos-") -> Iterator[Path]:
    """A private folder under /tmp (short: unix socket paths must fit in 108 bytes)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
