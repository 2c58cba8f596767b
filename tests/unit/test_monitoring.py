"""The monitoring the platform ships against the metrics it exports: the alert rules (one file for docker-compose's
Prometheus and the Kubernetes PrometheusRule, checked and unit-tested by promtool) and the Grafana dashboards
name only metrics some service defines, and every alert points to a runbook section that exists."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TESTS = ROOT / "deploy" / "prometheus" / "rules.test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS_RULE = ROOT / "k8s" / "monitoring" / "prometheusrule.yaml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
SERVICES = ("ingest", "rewards", "ledger", "identity", "directory", "portal")

PROMETHEUS_OWN = {"up"}
"""Series Prometheus itself writes for every target."""

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
"""The sample names of a metric family, by type, beside its name (gauges and untyped: the name alone)."""


def _sample_names(family: Metric) -> set[str]:
    return {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}


@cache
def exported_metric_names() -> frozenset[str]:
    """Every sample name a service can export: the families of every module under services/ that defines
    Prometheus metrics (imported, so they register), the process and GC collectors every /metrics carries,
    and the rewards worker's Faust sensors (in a registry of their own, as the worker builds them)."""
    for path in sorted((ROOT / "services").rglob("*.py")):
        if "prometheus_client import" in path.read_text():
            importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    from faust.sensors.prometheus import FaustMetrics

    from services.rewards.app import FAUST_METRICS_PREFIX

    faust_registry = CollectorRegistry()
    FaustMetrics.create(faust_registry, FAUST_METRICS_PREFIX)
    families = [*REGISTRY.collect(), *faust_registry.collect()]
    return frozenset(name for family in families for name in _sample_names(family)) | PROMETHEUS_OWN


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_KEYWORDS |= {"offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers once strings, label matchers, ranges and
    grouping clauses are taken out, other than functions, aggregations (followed by a parenthesis) and
    keywords. Grafana's `$variables` count as nothing."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def test_the_promql_reader_finds_exactly_the_metric_names() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_seconds_bucket{service="x", route=~"/v1/.*"}'
        "[$__rate_interval]))) / on (job) group_left (instance) b_total offset 5m > bool 1e3 "
        'unless c_gauge{job="y"} and sum without (partition) (d:recorded) or label_replace(e, "f", "$1", "g", "h")'
    )
    assert promql_metric_names(expr) == {"a_seconds_bucket", "b_total", "c_gauge", "d:recorded", "e"}


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_every_rule_names_only_metrics_the_services_export() -> None:
    exported = exported_metric_names()
    for rule in rules():
        names = promql_metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in its expression"
        assert names <= exported, f"{rule['alert']} names metrics no service exports: {names - exported}"


def _anchors(markdown: str) -> set[str]:
    """The anchors of a Markdown file's headings, as GitHub and most renderers make them."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section_that_exists() -> None:
    anchors = _anchors(RUNBOOKS.read_text())
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert (ROOT / path) == RUNBOOKS, rule["alert"]
        assert anchor == rule["alert"].lower() and anchor in anchors, f"{rule['alert']}: no section #{anchor}"


def test_the_kubernetes_prometheusrule_is_the_rules_file_wrapped() -> None:
    """The PrometheusRule's spec is the rules file indented under it, byte for byte below its header (the
    regeneration command in the file's header makes exactly this)."""
    text = PROMETHEUS_RULE.read_text()
    header, spec_line, _ = text.partition("\nspec:\n")
    assert spec_line, "no spec: line"
    indented = "".join("  " + line if line.strip() else line for line in RULES.read_text().splitlines(True))
    assert text == header + spec_line + indented, "regenerate it with the command in its header"
    rule = yaml.safe_load(text)
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_compose_prometheus_loads_the_same_rules() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["rules.yml"]  # beside prometheus.yml, in the container as here
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    assert "./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in volumes


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs it (scripts/ensure-test-tools.sh)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", str(RULES.relative_to(ROOT))),
        ("check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT))),
        ("test", "rules", str(RULES_TESTS.relative_to(ROOT))),
    ],
    ids=["check-rules", "check-config", "test-rules"],
)
def test_promtool_accepts_the_rules_and_their_unit_tests_pass(args: tuple[str, ...]) -> None:
    result = _promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_by_promtool_or_named_here_as_not() -> None:
    """The pipeline's alerts and DLQ growth each have a promtool unit test; the older HTTP and scrape alerts
    are plain thresholds."""
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    untested = {"SmartcityServiceDown", "SmartcityHttpErrors", "SmartcityProduceFailures"}
    assert tested | untested == {rule["alert"] for rule in rules()}


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every query a dashboard runs: its panels' targets and its template variables."""
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            # label_values(metric, label) and query_result(expr) wrap PromQL; label_values(label) names none.
            inner = re.fullmatch(r"\s*(?:label_values|query_result)\((.*)\)\s*", query)
            expr = inner.group(1) if inner else query
            if "label_values" in query:
                expr = expr.rpartition(",")[0]
            if expr:
                yield f"variable {variable['name']!r}", expr


def test_a_dashboard_per_service_a_pipeline_dashboard_and_the_overview() -> None:
    assert set(dashboards()) == {f"smartcity-{name}" for name in (*SERVICES, "pipeline", "overview")}


@pytest.mark.parametrize("name", sorted(path.stem for path in DASHBOARDS.glob("*.json")))
def test_every_dashboard_query_names_only_metrics_the_services_export(name: str) -> None:
    exported = exported_metric_names()
    queries = list(dashboard_queries(dashboards()[name]))
    assert queries, f"{name} runs no query"
    for where, expr in queries:
        names = promql_metric_names(expr)
        assert names, f"{name} {where}: no metric in {expr!r}"
        assert names <= exported, f"{name} {where} names metrics no service exports: {names - exported}"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_dashboard_shows_the_four_golden_signals(service: str) -> None:
    dashboard = dashboards()[f"smartcity-{service}"]
    rows = {panel["title"].split(":")[0] for panel in dashboard["panels"] if panel["type"] == "row"}
    assert {"Traffic", "Errors", "Latency", "Saturation"} <= rows
    ids = [panel["id"] for panel in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert dashboard["uid"] == f"smartcity-{service}"


def test_the_pipeline_dashboard_shows_the_lag_of_every_group() -> None:
    exprs = [expr for _, expr in dashboard_queries(dashboards()["smartcity-pipeline"])]
    assert any("smartcity_consumer_lag" in expr and "group" in expr for expr in exprs)
