"""The real balloond daemon (`balloond run`) on a lab host, and balloonctl next to it.

Each daemon gets its own folder under e2e/.cache/run/daemon-NAME/ with a config, a policy
folder, its state, its control socket and its log; it runs inside its host's mount namespace
so `qemu:///system` and the guests' channel sockets are that host's.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from e2e import ROOT, RUN, procs
from e2e.hosts import LibvirtHost
from e2e.wait import wait_for

VENV_BIN = Path(sys.executable).parent

# The lab's policy: floor half of maxmem (256 MiB of 512), quick moves so that scenarios
# finish in seconds, not the production defaults' minutes.
LAB_POLICY = """\
version: 1
policies:
  - name: default
    floor: 25%
  - name: lab
    match:
      names: ["bde2e-*"]
    floor: {floor}
    buffer: {buffer}
    weight: 1000
    max_shrink_step: {shrink_step}
    max_grow_step: unlimited
    deadband: 8MiB
    pressure_target: 0.5%
    swap_guard: true
    self_adjust: {self_adjust}
"""


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Prometheus text -> {(sample name, labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the first sample `name` whose labels include `labels`, or None."""
    want = set(labels.items())
    for (n, lbls), value in samples.items():
        if n == name and want <= lbls:
            return value
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Balloond:
    def __init__(
        self,
        host: LibvirtHost,
        *,
        reserve: str = "1GiB",
        interval: str = "1s",
        floor: str = "50%",
        shrink_step: str = "64MiB",
        self_adjust: bool = False,
        buffer: str = "20%",
        extra_policies: str = "",
    ) -> None:
        self.host = host
        self.dir = RUN / f"daemon-{host.name}"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "policies").mkdir(exist_ok=True)
        (self.dir / "policies" / "lab.yaml").write_text(
            LAB_POLICY.format(
                floor=floor,
                shrink_step=shrink_step,
                buffer=buffer,
                self_adjust="true" if self_adjust else "false",
            )
            + extra_policies
        )
        self.config = self.dir / "balloond.yaml"
        self.config.write_text(
            "\n".join(
                [
                    f"uri: {host.local_uri}",
                    f"interval: {interval}",
                    f"reserve: {reserve}",
                    "metrics_address: 127.0.0.1",
                    f"metrics_port: {self.port}",
                    f"policy_dir: {self.dir / 'policies'}",
                    f"state_dir: {self.dir / 'state'}",
                    f"control_socket: {self.dir / 'control.sock'}",
                    "stats_period: 2s",
                ]
            )
            + "\n"
        )
        self.log = self.dir / "balloond.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self, timeout: float = 60.0) -> None:
        argv = [str(VENV_BIN / "balloond"), "run", "--config", str(self.config)]
        self.proc = procs.spawn(self.host.nsenter(argv), self.log, cwd=ROOT)
        procs.CLEANUP.push(f"balloond on {self.host.name}", self.stop)
        wait_for(self._ready, timeout, f"balloond on {self.host.name}: metrics at {self.url}")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"balloond on {self.host.name} exited {self.proc.returncode}: {self.tail()}"
            )
        # An HTTP error still means it answers: whether its metrics are sound is for the
        # tests to find out.
        with contextlib.suppress(urllib.error.HTTPError):
            self.scrape()
        return True

    def stop(self) -> None:
        procs.stop(self.proc)
        self.proc = None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- observing -------------------------------------------------------------------------
    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=5) as resp:
            return str(resp.read().decode())

    def metrics(self) -> Samples:
        return parse_metrics(self.scrape())

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of the one sample `name` whose labels include `labels`, or None."""
        return sample(self.metrics(), name, **labels)

    # -- balloonctl ------------------------------------------------------------------------
    def ctl(
        self, *args: str, config: Path | None = None, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `balloonctl ARGS --config CONFIG` inside this host's namespace; the daemon's
        config (default) gives it the URI, reserve, policies and control socket."""
        argv = [str(VENV_BIN / "balloonctl"), *args, "--config", str(config or self.config)]
        return subprocess.run(
            self.host.nsenter(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            check=False,
        )
