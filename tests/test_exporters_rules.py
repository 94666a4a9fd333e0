"""exporters/: the alert rules (promtool), the dashboard's shape, and that every metric the
dashboard and the rules name exists in a real scrape."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from balloond.metrics import render
from balloond.metrics.demo import simulated_view
from tests.support.exporters import (
    ALERTS,
    ALERTS_TEST,
    DASHBOARD,
    ROOT,
    SCRAPE,
    alert_rules,
    all_panels,
    dashboard,
    dashboard_targets,
    scrape_job,
)
from tests.support.views import hand_made_view, scrape

# Series Prometheus makes itself rather than scraping them.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers that are not functions, keywords,
    label names (inside `{}` or a `by (...)` clause), strings or durations."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text
    )  # grouping labels
    found = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        name = match.group()
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or name.lower() in _PROMQL_WORDS:
            continue  # a function or an aggregation
        found.add(name)
    return found


def test_metric_names_extractor() -> None:
    assert metric_names('sum by (domain, le) (rate(a_total{x="b{c}"}[5m])) > 0') == {"a_total"}
    assert metric_names("time() - b_seconds") == {"b_seconds"}
    assert metric_names('c > 0.1 and on(job) d >= e or absent(up{job="x"})') == {
        "c",
        "d",
        "e",
        "up",
    }
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(h_bucket[1m])))") == {
        "h_bucket"
    }


def rich_scrape_names() -> set[str]:
    """Sample names of a simulated host's scrape plus a view with every counter non-empty."""
    view, host = simulated_view(ticks=2)
    found = set()
    for body in (render(view, clock=host.now), scrape(hand_made_view())):
        for family in text_string_to_metric_families(body.decode()):
            found.update(sample.name for sample in family.samples)
    return found


def test_every_metric_in_the_dashboard_and_the_alerts_is_exported() -> None:
    wanted: dict[str, str] = {}
    for title, ref, expr in dashboard_targets():
        for name in metric_names(expr):
            wanted.setdefault(name, f"dashboard panel {title!r} query {ref}")
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            wanted.setdefault(name, f"alert {rule['alert']}")
    assert len(wanted) > 25  # the extractor found the expressions' names, not nothing
    exported = rich_scrape_names()
    missing = {
        name: where
        for name, where in wanted.items()
        if name not in exported and name not in PROMETHEUS_OWN
    }
    assert not missing


def test_the_issue_asks_for_these_alerts() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "BalloondDown",
        "BalloondTicksStale",
        "BalloondLibvirtUnreachable",
        "BalloondGuestPressureAtCeiling",
        "BalloondHostFreeBelowReserve",
        "BalloondBalloonStuck",
        "BalloondReportChannelSilent",
        "BalloondStateWritesFailing",  # issue 16: failed state writes are alerted on
    } <= names
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    firing, quiet = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set()
    assert names - quiet == set()


def test_every_alert_links_its_section_of_the_runbook() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    anchors = {title.lower() for title in re.findall(r"^## (\S+)$", runbook, re.M)}
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.endswith("/docs/runbook.md"), url
        assert anchor == rule["alert"].lower() and anchor in anchors, url


def _counts_events(expr: str) -> bool:
    """An alert on how often something happened: increase() or rate() of a counter."""
    return re.search(r"\b(increase|rate)\([a-z_]+_total\b", expr) is not None


def test_every_failure_alert_is_tested_on_the_first_failure_after_a_start() -> None:
    """Such an alert must see a counter's first event after a (re)start; the unit test
    named after it starts the counter at 0 (as the daemon exports it) and expects it to
    fire on the first failures."""
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    for rule in alert_rules():
        if not _counts_events(rule["expr"]) and rule["alert"] != "BalloondTicksStale":
            continue
        name = f"first failure after a start: {rule['alert']}"
        cases = [case for case in tests if case.get("name", "").startswith(name)]
        assert cases, f"no promtool test named {name!r}"
        fired = [c for case in cases for c in case["alert_rule_test"] if c["exp_alerts"]]
        assert fired, name
        first = [s["values"].split()[0] for case in cases for s in case["input_series"]]
        assert all(value == "0" or value.startswith("0x") for value in first), name
    assert any(_counts_events(rule["expr"]) for rule in alert_rules())


def test_the_scrape_config_labels_every_target_with_its_host() -> None:
    job = scrape_job()
    relabel = job["relabel_configs"][0]
    assert relabel["target_label"] == "host"
    pattern = re.compile(relabel["regex"].replace("$", ""))
    # Prometheus joins the source labels with ";": no host label yet, then the address.
    assert pattern.fullmatch(";hv1.example.net:9877").group(1) == "hv1.example.net"  # type: ignore[union-attr]
    assert pattern.fullmatch("hv0;127.0.0.1:9877") is None  # a host named by hand stays


def test_the_dashboard_opens_with_the_domain_row_collapsed() -> None:
    rows = [panel for panel in dashboard()["panels"] if panel["type"] == "row"]
    domains = next(row for row in rows if row["title"] == "Domains")
    assert domains["collapsed"] and len(domains["panels"]) >= 5
    assert any("$domain" in t["expr"] for p in domains["panels"] for t in p["targets"])
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["host"]["query"]["query"] == "label_values(balloond_build_info, host)"
    exprs = [expr for _, _, expr in dashboard_targets()]
    assert all('host=~"$host"' in expr for expr in exprs if expr.startswith("balloond_")), [
        e for e in exprs if 'host=~"$host"' not in e
    ][:3]


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    return binary


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.prometheus
def test_promtool_check_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@pytest.mark.prometheus
def test_promtool_test_rules(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_promtool_rule_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """The unit tests are not vacuous: with one threshold changed, they fail."""
    (tmp_path / "alerts.yml").write_text(
        ALERTS.read_text().replace("balloond_libvirt_up == 0", "balloond_libvirt_up == 2")
    )
    (tmp_path / "alerts_test.yml").write_text(ALERTS_TEST.read_text())
    result = run(promtool, "test", "rules", str(tmp_path / "alerts_test.yml"))
    assert result.returncode != 0
    assert "BalloondLibvirtUnreachable" in result.stdout + result.stderr


@pytest.mark.prometheus
def test_example_scrape_config_is_valid(promtool: str) -> None:
    result = run(promtool, "check", "config", str(SCRAPE))
    assert result.returncode == 0, result.stdout + result.stderr


# -- the dashboard as Grafana imports it ------------------------------------------------------


def test_dashboard_variables() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    domain = variables["domain"]
    assert domain["type"] == "query"
    assert re.fullmatch(
        r"label_values\(balloond_domain_info(\{[^}]*\})?, domain\)", domain["query"]["query"]
    )
    assert domain["multi"] and domain["includeAll"]


def test_dashboard_is_importable_as_is() -> None:
    data = dashboard()
    assert "__inputs" not in data  # nothing to fill in: the datasource is a variable
    assert data["uid"] and data["title"] and isinstance(data["schemaVersion"], int)
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
    text = DASHBOARD.read_text()
    assert "${DS_" not in text  # no import-time placeholder left to substitute


def test_dashboard_covers_the_issue() -> None:
    titles = " / ".join(p["title"].lower() for p in all_panels())
    for words in (
        "reclaimed",
        "free vs reserve",
        "overcommit",
        "current, target, floor, ceiling",
        "pressure",
        "swap",
        "adjustments by reason",
        "tick duration",
        "libvirt",
    ):
        assert words in titles, words
    exprs = " ".join(expr for _, _, expr in dashboard_targets())
    assert "balloond_domain_decision_reason" in exprs
