"""XES (IEEE 1849) event logs of executions, for process-mining tools.

One ``trace`` per execution (``concept:name`` = execution id, with its workflow, version and
status), one ``event`` per step transition: ``StepScheduled`` is ``start``, ``StepSucceeded``
``complete``, ``StepFailed`` ``ate_abort`` (with the error type; ``retried`` when another attempt
follows), each with the step as ``concept:name`` and ``time:timestamp``. Steps without a task
(choices, waits) appear with their ``complete`` only. Input: events as the API serves them
(CloudEvents dicts). Pure: text out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

PREFIX = "io.orchestrator."
_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1849-2016" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">
  <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>
  <extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>
  <extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>
  <global scope="trace"><string key="concept:name" value="__INVALID__"/></global>
  <global scope="event"><string key="concept:name" value="__INVALID__"/><string key="lifecycle:transition" value="complete"/></global>
  <classifier name="Activity" keys="concept:name"/>
  <classifier name="Activity and transition" keys="concept:name lifecycle:transition"/>
"""
_TRANSITIONS = {"StepScheduled": "start", "StepSucceeded": "complete", "StepFailed": "ate_abort"}


def _attr(kind: str, key: str, value: Any) -> str:
    return f"<{kind} key={quoteattr(key)} value={quoteattr(str(value))}/>"


def _event(event: Mapping[str, Any]) -> str | None:
    kind = str(event.get("type", "")).removeprefix(PREFIX)
    transition = _TRANSITIONS.get(kind)
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    if transition is None or not isinstance(data, dict) or not data.get("step"):
        return None
    parts = [
        _attr("string", "concept:name", data["step"]),
        _attr("string", "lifecycle:transition", transition),
        _attr("date", "time:timestamp", event.get("time", "")),
    ]
    if "attempt" in data:
        parts.append(_attr("int", "attempt", data["attempt"]))
    if kind == "StepFailed":
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        parts.append(_attr("string", "error", (error or {}).get("type", "unknown")))
        parts.append(_attr("boolean", "retried", "true" if "retry" in data else "false"))
    return "    <event>" + "".join(parts) + "</event>"


def trace(execution: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> str:
    """One execution (its summary as the API serves it) and its events as a ``trace``."""
    lines = [
        "  <trace>"
        + _attr("string", "concept:name", execution.get("execution_id", ""))
        + _attr("string", "workflow", execution.get("workflow", ""))
        + _attr("int", "version", execution.get("version", 0))
        + _attr("string", "status", execution.get("status", ""))
        + _attr("date", "started_at", execution.get("started_at", ""))
    ]
    lines += [line for line in (_event(e) for e in events) if line is not None]
    lines.append("  </trace>")
    return "\n".join(lines)


def log(name: str, traces: Iterable[str]) -> Iterable[str]:
    """The whole document, piece by piece (traces as ``trace`` made them)."""
    yield _HEAD
    yield "  " + _attr("string", "concept:name", name) + "\n"
    for item in traces:
        yield item + "\n"
    yield "</log>\n"
