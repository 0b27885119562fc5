"""The XES export and the HTML report are well-formed and escape what they are given."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from orchestrator.analytics import report, xes

NS = {"x": "http://www.xes-standard.org/"}


def test_xes_is_well_formed_and_escapes_names() -> None:
    execution = {"execution_id": 'e<1>&"', "workflow": "w", "version": 2, "status": "failed", "started_at": "2026-01-01T00:00:00Z"}
    events = [
        {"type": "io.orchestrator.ExecutionStarted", "time": "2026-01-01T00:00:00Z", "data": {}},
        {"type": "io.orchestrator.StepScheduled", "time": "2026-01-01T00:00:01Z", "data": {"step": "a&b", "attempt": 1}},
        {"type": "io.orchestrator.StepFailed", "time": "2026-01-01T00:00:02Z",
         "data": {"step": "a&b", "attempt": 1, "error": {"type": "x<y"}}},
    ]  # fmt: skip
    root = ET.fromstring("".join(xes.log("w", [xes.trace(execution, events)])))
    [trace] = root.findall("x:trace", NS)
    assert trace.find("x:string[@key='concept:name']", NS).get("value") == 'e<1>&"'  # type: ignore[union-attr]
    kinds = [e.find("x:string[@key='lifecycle:transition']", NS).get("value") for e in trace.findall("x:event", NS)]  # type: ignore[union-attr]
    assert kinds == ["start", "ate_abort"]
    assert trace.findall("x:event", NS)[1].find("x:string[@key='error']", NS).get("value") == "x<y"  # type: ignore[union-attr]


def answers() -> dict[str, Any]:
    summary = {"count": 1, "mean": 1.0, "p50": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0}
    return {
        "overview": {"workflow": "<w>", "tenant": "t", "since": "s", "until": "u", "percentile_relative_error": 0.0443,
                     "started": 1, "succeeded": 1, "failed": 0, "cancelled": 0, "success_rate": 1.0,
                     "failure_rate": 0.0, "duration": summary},
        "rates": {"every": "1h", "periods": [{"start": 0, "started": 1, "succeeded": 1, "failed": 0, "cancelled": 0}]},
        "steps": {"steps": [{"step": "<s>", "attempts": 1, "succeeded": 1, "failed": 0, "retries": 0, "retry_rate": 0.0,
                             "duration": summary, "queue": summary, "run": summary}]},
        "failures": {"steps": []},
        "bottlenecks": {"workflows": [{"steps": [{"step": "<s>", "seconds_on_path": 1.0, "share": 1.0}]}]},
        "slas": {"slas": []},
    }  # fmt: skip


def test_the_report_escapes_names_and_its_csv_has_the_numbers() -> None:
    page = report.html(answers(), "Workflow <w>")
    assert "<s>" not in page and "&lt;s&gt;" in page and page.count("<svg") == 3
    rows = report.csv_rows(answers())
    assert ("overview", "<w>", "started", 1) in rows and ("steps", "<s>", "attempts", 1) in rows
