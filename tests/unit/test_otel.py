"""Spans per execution and per step attempt, exported to OpenTelemetry's in-memory exporter:
names, parent and child, attributes, status on failure, the parent from the recorded traceparent."""

from __future__ import annotations

import ast
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from connectors.base import Connectors
from connectors.tracing import outbound_traceparent
from orchestrator.instrumentation import Tee
from orchestrator.observability.otel import OtelInstruments, OtelSettingsError, exporter_from_env
from orchestrator.observability.prometheus import PrometheusInstruments
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas import traceparent
from schemas.builder import Workflow, retry
from tests.unit.test_instrumentation import Steps

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ROOT = Path(__file__).resolve().parents[2]


def exported() -> tuple[InMemorySpanExporter, OtelInstruments]:
    exporter = InMemorySpanExporter()
    return exporter, OtelInstruments(SimpleSpanProcessor(exporter))


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


async def test_an_execution_and_its_steps_are_spans_under_the_recorded_caller() -> None:
    exporter, spans = exported()
    metrics = PrometheusInstruments(process_metrics=False)
    settings = Settings(event_log_url="memory://", transport_url="inprocess://?concurrency=2", auth=False)
    async with Runtime(settings, connectors=Connectors([Steps()]), instruments=Tee(metrics, spans)) as rt:
        await rt.register(Workflow("ok").task("first", "steps").task("flaky", "steps", retry=retry(max_attempts=2, initial_seconds=0.01)).build())
        started = await rt.start_execution("ok", {}, metadata={"traceparent": CALLER})
        assert (await rt.wait(started.execution_id, timeout=10)).status == "succeeded"
    found = by_name(exporter.get_finished_spans())
    assert sorted(found) == ["execution ok", "step first", "step flaky"]
    (execution,) = found["execution ok"]
    assert execution.context is not None and execution.parent is not None
    assert f"{execution.context.trace_id:032x}" == CALLER.split("-")[1]  # the caller's trace
    assert f"{execution.parent.span_id:016x}" == CALLER.split("-")[2] and execution.parent.is_remote
    assert f"{execution.context.span_id:016x}" == traceparent.execution_span_id(started.execution_id)
    assert execution.status.status_code is StatusCode.OK
    assert dict(execution.attributes or {}) == {
        "orchestrator.execution_id": started.execution_id,
        "orchestrator.workflow": "ok",
        "orchestrator.tenant": "default",
        "orchestrator.status": "succeeded",
    }
    assert execution.start_time is not None and execution.end_time is not None
    assert execution.start_time <= execution.end_time
    for span in found["step first"] + found["step flaky"]:  # children of the execution's span
        assert span.parent is not None and span.context is not None
        assert span.parent.span_id == execution.context.span_id
        assert span.context.trace_id == execution.context.trace_id
        assert span.start_time is not None and execution.start_time <= span.start_time
    failed, retried = sorted(found["step flaky"], key=lambda span: int(str((span.attributes or {})["orchestrator.attempt"])))
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description == "flaky.once"
    assert (failed.attributes or {})["error.type"] == "flaky.once"
    assert (failed.attributes or {})["orchestrator.outcome"] == "retryable"
    assert retried.status.status_code is StatusCode.OK and (retried.attributes or {})["orchestrator.attempt"] == 2
    assert (retried.attributes or {})["orchestrator.connector"] == "steps"


async def test_a_failed_execution_is_an_error_span_in_a_trace_of_its_own() -> None:
    exporter, spans = exported()
    settings = Settings(event_log_url="memory://", transport_url="inprocess://?concurrency=2", auth=False)
    async with Runtime(settings, connectors=Connectors([Steps()]), instruments=spans) as rt:
        await rt.register(Workflow("bad").task("broken", "steps").build())
        started = await rt.start_execution("bad", {})
        assert (await rt.wait(started.execution_id, timeout=10)).status == "failed"
    found = by_name(exporter.get_finished_spans())
    (execution,) = found["execution bad"]
    (step,) = found["step broken"]
    assert execution.parent is None and execution.context is not None  # no caller: a root span
    assert f"{execution.context.trace_id:032x}" == traceparent.execution_trace_id(started.execution_id)
    assert execution.status.status_code is StatusCode.ERROR and execution.status.description == "failed"
    assert step.status.status_code is StatusCode.ERROR and (step.attributes or {})["error.type"] == "broken.for_good"
    assert step.parent is not None and step.parent.span_id == execution.context.span_id


def test_a_steps_calls_name_its_span_as_their_parent() -> None:
    from connectors.base import StepCall

    call = StepCall(execution_id="e", workflow="w", step="s", attempt=3, idempotency_key="k", traceparent=CALLER)
    header = outbound_traceparent(call)
    assert header is not None and header.split("-")[2] == traceparent.attempt_span_id("e", "s", 3)


def test_the_exporter_is_picked_by_the_standard_variable() -> None:
    assert type(exporter_from_env({"OTEL_TRACES_EXPORTER": "console"})).__name__ == "ConsoleSpanExporter"
    assert type(exporter_from_env({})).__name__ == "OTLPSpanExporter"
    try:
        exporter_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    except OtelSettingsError as exc:
        assert "zipkin" in str(exc)
    else:
        raise AssertionError("an unknown exporter was accepted")


def test_off_by_default_and_only_the_adapter_imports_opentelemetry() -> None:
    assert Settings().otel is False and Settings.from_env({"ORCHESTRATOR_OTEL": "true"}).otel is True
    importers = []
    for path in [*ROOT.joinpath("orchestrator").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "opentelemetry" for name in names):
                importers.append(path.relative_to(ROOT).as_posix())
                break
    assert importers == ["orchestrator/observability/otel.py"]
