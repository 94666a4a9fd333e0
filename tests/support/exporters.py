"""The shipped exporters/ files (Grafana dashboard, Prometheus alert rules and their unit
tests, the example scrape config) and what their queries read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]  # the repository
DASHBOARD = ROOT / "exporters" / "grafana" / "balloond.json"
ALERTS = ROOT / "exporters" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "exporters" / "prometheus" / "alerts_test.yml"
SCRAPE = ROOT / "exporters" / "prometheus" / "scrape.yml"

# Grafana's template variables, as a dashboard with every host and domain selected sends them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$host": ".*", "$domain": ".*"}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_targets() -> list[tuple[str, str, str]]:
    """(panel title, refId, expression) for every query of the dashboard."""
    found = []
    for panel in all_panels():
        for target in panel.get("targets", []):
            found.append((panel["title"], target["refId"], target["expr"]))
    return found


def all_panels() -> list[dict[str, Any]]:
    """Every panel, also those inside a collapsed row (Grafana keeps them in the row)."""
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def scrape_job() -> dict[str, Any]:
    """The balloond job of the example scrape config (its relabelling included)."""
    jobs = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
    job: dict[str, Any] = next(j for j in jobs if j["job_name"] == "balloond")
    return job


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]
