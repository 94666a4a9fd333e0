"""A real Prometheus server scrapes the metrics endpoint of the daemon (balloond.daemon) on a
simulated host, loads the alert rules, and answers every dashboard query with data."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from balloond.backend.simulated import open_simulated
from balloond.daemon.assemble import build_daemon
from balloond.daemon.loop import LoopSettings
from balloond.metrics import serve
from balloond.policy.model import Amount
from balloond.units import MiB
from tests.support.exporters import (
    ALERTS,
    alert_rules,
    dashboard_targets,
    scrape_job,
    substitute,
)

pytestmark = pytest.mark.prometheus

WAIT = 90.0  # seconds before a condition that never comes true fails the test
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll `probe` until it returns something; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool | None:
        if self.process.poll() is not None:
            pytest.fail(
                f"prometheus exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as answer:
                return True if answer.status == 200 else None
        except (urllib.error.URLError, ConnectionError):
            return None


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package 'prometheus')")
    folder = tmp_path_factory.mktemp("prometheus")
    host = open_simulated("sim://default?clock=manual")
    daemon = build_daemon(
        "sim://default",
        LoopSettings(interval=10.0, reserve=Amount(size=512 * MiB)),
        None,
        clock=host.now,
        connect=lambda: host,
        channels=False,
        policy_dir_required=False,
    )
    for _ in range(4):
        host.advance(10.0)
        daemon.tick()
    # Counters a short simulated run without guest channels or operators does not reach;
    # the daemon's channels and commands record them the same way.
    counters = daemon.counters()
    counters.record_failure("operation_failed")
    for uuid in daemon.reports():
        counters.record_report(uuid)
    counters.record_report("", rejected_reason="malformed")
    counters.record_operation("migrate", "ok", duration=8.0, downtime=0.2)
    metrics = serve(daemon, "127.0.0.1", 0)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "balloond",
                "static_configs": [{"targets": [f"127.0.0.1:{metrics.port}"]}],
                "relabel_configs": scrape_job()["relabel_configs"],  # the shipped `host` label
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_for("prometheus to be ready", server.ready)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        metrics.close()
        daemon.close()


def test_prometheus_scrapes_the_daemon(prometheus: Prometheus) -> None:
    def up() -> list[Any] | None:
        result: list[Any] = prometheus.api("query", query='up{job="balloond"} == 1')["result"]
        return result or None

    assert len(wait_for("the balloond target to be up", up)) == 1


def test_prometheus_loads_every_alert_rule(prometheus: Prometheus) -> None:
    groups = prometheus.api("rules")["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(loaded) == {rule["alert"] for rule in alert_rules()}
    assert all(rule["health"] != "err" for rule in loaded.values())


@pytest.mark.parametrize(
    ("panel", "ref", "expr"),
    dashboard_targets(),
    ids=[f"{p}/{r}" for p, r, _ in dashboard_targets()],
)
def test_dashboard_query_returns_data(
    prometheus: Prometheus, panel: str, ref: str, expr: str
) -> None:
    query = substitute(expr)
    assert "$" not in query, f"unsubstituted Grafana variable in {panel!r} {ref}: {query}"

    def answered() -> list[Any] | None:
        result: list[Any] = prometheus.api("query", query=query)["result"]
        return result or None

    result = wait_for(f"data for panel {panel!r} query {ref}: {query}", answered)
    assert all("value" in series for series in result)


def test_dashboard_variables_have_values(prometheus: Prometheus) -> None:
    def values(label: str) -> list[str] | None:
        found: list[str] = prometheus.api(
            f"label/{label}/values", **{"match[]": "balloond_domain_info"}
        )
        return found or None

    domains = wait_for("domain names for the $domain variable", lambda: values("domain"))
    assert "web" in domains and "idle" in domains  # the demo scenario's guests
    hosts = wait_for("hosts for the $host variable", lambda: values("host"))
    assert hosts == ["127.0.0.1"]  # from the target address, by scrape.yml relabelling


def test_no_alert_fires_for_a_healthy_daemon(prometheus: Prometheus) -> None:
    """Right after start, `absent(up)` makes BalloondDown pending until the first scrape;
    wait for an evaluation after the daemon is up, then nothing may be pending or firing."""
    active: dict[str, str] = {}

    def settled() -> bool | None:
        nonlocal active
        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        up = prometheus.api("query", query='up{job="balloond"} == 1')["result"]
        evaluated = all(not rule["lastEvaluation"].startswith("0001") for rule in rules)
        active = {rule["name"]: rule["state"] for rule in rules if rule["state"] != "inactive"}
        return True if up and evaluated and not active else None

    deadline = time.monotonic() + WAIT
    while settled() is None:
        assert time.monotonic() < deadline, f"alerts active for a healthy daemon: {active}"
        time.sleep(0.2)
