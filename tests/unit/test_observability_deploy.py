"""The Grafana dashboard, the alerting rules and the metric reference use only metrics the
exporter has; promtool accepts the rules (and every dashboard query as one)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from orchestrator.observability.prometheus import PrometheusInstruments

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "orchestrator.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DOC = ROOT / "docs" / "observability.md"
SCRAPE_METRICS = {"up"}  # written by Prometheus itself for every target
METRIC = re.compile(r"\b(?:(?:orchestrator|process|python)_[a-z0-9_]+|up)\b(?!\s*\()")
ROWS = ["Throughput", "Latency", "Errors", "Backlog", "Triggers", "Cluster"]


def families() -> dict[str, str]:
    """Every metric family the exporter registers: name -> type."""
    return {family.name: family.type for family in PrometheusInstruments().registry.collect()}


def exported() -> set[str]:
    """Every sample name a scrape can show (histograms: _bucket, _sum, _count; counters: _total)."""
    names = set()
    for name, kind in families().items():
        if kind == "counter":
            names |= {f"{name}_total"}
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def referenced(expression: str) -> set[str]:
    without_matchers = re.sub(r"\{[^}]*\}", "", expression)
    return set(METRIC.findall(without_matchers))


def unknown(expressions: list[str]) -> set[str]:
    known = exported() | SCRAPE_METRICS
    return {name for e in expressions for name in referenced(e)} - known


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def alert_expressions(rules: dict[str, Any]) -> list[str]:
    return [str(rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def promtool_rules(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def as_rules(expressions: list[str], path: Path) -> Path:
    """Each expression as a recording rule (Grafana's $__rate_interval as 5m), for promtool."""
    rules = [{"record": f"dashboard:query{i}", "expr": e.replace("$__rate_interval", "5m")} for i, e in enumerate(expressions)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path


def test_every_dashboard_query_uses_exported_metrics_and_parses(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = dashboard_expressions(dashboard)
    assert len(expressions) > 20
    assert unknown(expressions) == set()
    checked = promtool_rules(as_rules(expressions, tmp_path / "dashboard.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [p["title"] for p in dashboard["panels"] if p["type"] == "row"] == ROWS
    used = {name for e in expressions for name in referenced(e)}
    assert {"orchestrator_sla_breaches_total", "orchestrator_quota_refusals_total", "orchestrator_quota_usage"} <= used


def test_the_alerting_rules_pass_promtool_and_use_exported_metrics() -> None:
    checked = promtool_rules(ALERTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = yaml.safe_load(ALERTS.read_text())
    assert unknown(alert_expressions(rules)) == set()
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"OrchestratorExecutionsFailing", "OrchestratorBacklogGrowing", "OrchestratorConsumerLag", "OrchestratorNodeDown"} <= names
    assert {"OrchestratorSlaBreaches", "OrchestratorQuotaRefusals"} <= names


def test_the_checks_can_fail(tmp_path: Path) -> None:
    assert unknown(['sum(rate(orchestrator_no_such_thing_total[5m])) + up', "orchestrator_tasks_queued"]) == {
        "orchestrator_no_such_thing_total"
    }
    assert unknown(["orchestrator_step_retries"]) == {"orchestrator_step_retries"}  # a counter needs _total
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"alert": "A", "expr": "sum(("}]}]}))
    assert promtool_rules(broken).returncode != 0


def documented() -> set[str]:
    """The metric names in the reference table of docs/observability.md."""
    table = DOC.read_text().split("## Metric reference", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(orchestrator_[a-z0-9_]+)`", table, flags=re.M))


def test_the_reference_table_lists_exactly_the_exported_metrics() -> None:
    ours = {
        f"{name}_total" if kind == "counter" else name
        for name, kind in families().items()
        if name.startswith("orchestrator_")
    }
    assert documented() == ours
