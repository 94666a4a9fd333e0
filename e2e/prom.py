"""A real Prometheus (Debian's `prometheus`) scraping the lab's daemons, and the queries of the
shipped Grafana dashboard (exporters/grafana/balloond.json) to run against it."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from e2e import ROOT, RUN, procs
from e2e.daemon import free_port
from e2e.wait import wait_for

DASHBOARD = ROOT / "exporters" / "grafana" / "balloond.json"
# What Grafana would substitute for the dashboard's variables with "All" selected.
VARIABLES = {"$host": ".*", "$domain": ".*", "$__rate_interval": "30s"}
SCRAPE = ROOT / "exporters" / "prometheus" / "scrape.yml"


def host_relabelling() -> list[dict[str, Any]]:
    """The shipped scrape config's relabelling of the balloond job (the `host` label)."""
    jobs = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
    relabel: list[dict[str, Any]] = next(
        job["relabel_configs"] for job in jobs if job["job_name"] == "balloond"
    )
    return relabel


class Prometheus:
    def __init__(self, targets: list[str]) -> None:
        self.dir = RUN / "prometheus"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(
            json.dumps(
                {  # JSON is YAML
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "balloond",
                            "static_configs": [{"targets": targets}],
                            "relabel_configs": host_relabelling(),
                        }
                    ],
                },
                indent=2,
            )
            + "\n"
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError("prometheus not found (Debian package prometheus)")
        argv = [
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.proc = procs.spawn(argv, self.dir / "prometheus.log")
        procs.CLEANUP.push("prometheus", self.stop)
        wait_for(self._ready, timeout, f"prometheus ready at {self.base}")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited {self.proc.returncode}")
        with urllib.request.urlopen(f"{self.base}/-/ready", timeout=5) as resp:
            return bool(resp.status == 200)

    def stop(self) -> None:
        procs.stop(self.proc)
        self.proc = None

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result


def dashboard_queries(path: Path = DASHBOARD) -> list[str]:
    """Every panel's PromQL, with the variables substituted as Grafana would for "All"."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(path.read_text()))
    out = []
    for expr in found:
        for var, value in VARIABLES.items():
            expr = expr.replace(var, value)
        out.append(expr)
    return out


def dashboard_queries_without(prom: Prometheus, domain: str) -> tuple[int, list[str]]:
    """Run every dashboard query against `prom` (invalid PromQL raises); return how many
    there were and the per-domain ones that have no series for `domain`."""
    queries = dashboard_queries()
    assert queries, "the dashboard has no queries"
    # rate() needs two samples inside the 30 s window; wait for them, don't sleep.
    wait_for(
        lambda: prom.query("rate(balloond_tick_duration_seconds_count[30s])"),
        60,
        "two scrapes for rate()",
    )
    empty = []
    for expr in queries:
        result = prom.query(expr)  # raises on invalid PromQL
        per_domain = "balloond_domain_" in expr and "rate(" not in expr and "count by" not in expr
        if per_domain and not any(r["metric"].get("domain") == domain for r in result):
            empty.append(expr)
    return len(queries), empty
