"""OpenTelemetry spans per execution and per step attempt, from the instrumentation hooks.

Only this module imports ``opentelemetry`` (the optional ``otel`` extra); the process root imports
it when ``ORCHESTRATOR_OTEL`` is on. A span is exported when what it covers has ended, with the
times the hooks report, so the execution's span comes from the process that commits its end and
a step's from the worker that ran it (Kafka mode: two processes, no shared state). Ids are
derived (``schemas.traceparent``): the execution's span id from its id, an attempt's from
(execution, step, attempt), so a step span names its execution's span as parent, and the calls
a step makes carry the step span as their parent. The trace is the one the execution was started
with (its recorded ``traceparent``, whose span is the execution span's parent), else one derived
from the execution id.

Spans go to a ``SpanProcessor``: by default a ``BatchSpanProcessor`` (its own export thread, the
SDK's) over the exporter that ``OTEL_TRACES_EXPORTER`` names (``otlp``, the default, configured
by the standard ``OTEL_EXPORTER_OTLP_*`` variables, or ``console``); the resource from
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from orchestrator.instrumentation import NoInstruments, StepOutcome
from schemas.traceparent import attempt_span_id, execution_span_id, execution_trace_id, parse

SCOPE = InstrumentationScope("orchestrator")
SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class OtelSettingsError(ValueError):
    """An ``OTEL_TRACES_EXPORTER`` this process cannot build."""


def exporter_from_env(environ: Mapping[str, str] = os.environ) -> SpanExporter:
    """The exporter ``OTEL_TRACES_EXPORTER`` names: ``otlp`` (default; needs the OTLP exporter
    package) or ``console``."""
    name = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if name == "console":  # the stdout of now: the SDK's default is the one when it was imported
        return ConsoleSpanExporter(out=sys.stdout)
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise OtelSettingsError(
                "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http (pip install 'orchestrator[otel]')"
            ) from None
        return OTLPSpanExporter()
    raise OtelSettingsError(f"OTEL_TRACES_EXPORTER={name!r}: use otlp or console")


def _nanos(seconds: float) -> int:
    return int(seconds * 1e9)


class OtelInstruments(NoInstruments):
    """Exports a span per ended execution and per step attempt; every other hook does nothing.
    ``stop()`` flushes and shuts the processor down."""

    __slots__ = ("processor", "resource")

    def __init__(self, processor: SpanProcessor | None = None, resource: Resource | None = None) -> None:
        self.resource = resource or Resource.create({SERVICE_NAME: "orchestrator"})
        self.processor = processor or BatchSpanProcessor(exporter_from_env())

    def stop(self) -> None:
        self.processor.shutdown()

    def _parent(self, execution_id: str, recorded: str | None) -> tuple[int, SpanContext | None]:
        """The execution's trace id and its span's parent (the caller recorded at the start)."""
        parsed = parse(recorded)
        if parsed is None:
            return int(execution_trace_id(execution_id), 16), None
        trace_id = int(parsed.trace_id, 16)
        flags = TraceFlags(int(parsed.flags, 16) & TraceFlags.SAMPLED)
        return trace_id, SpanContext(trace_id, int(parsed.span_id, 16), is_remote=True, trace_flags=flags)

    def _export(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, str | int],
        status: Status,
        started_at: float,
        ended_at: float,
    ) -> None:
        span = ReadableSpan(
            name,
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=attributes,
            kind=SpanKind.INTERNAL,
            status=status,
            start_time=_nanos(started_at),
            end_time=_nanos(max(ended_at, started_at)),
            instrumentation_scope=SCOPE,
        )
        self.processor.on_end(span)

    def execution_traced(
        self,
        execution_id: str,
        workflow: str,
        tenant: str,
        traceparent: str | None,
        status: str,
        started_at: float | None,
        ended_at: float,
    ) -> None:
        trace_id, parent = self._parent(execution_id, traceparent)
        context = SpanContext(trace_id, int(execution_span_id(execution_id), 16), False, SAMPLED)
        attributes: dict[str, str | int] = {
            "orchestrator.execution_id": execution_id,
            "orchestrator.workflow": workflow,
            "orchestrator.tenant": tenant,
            "orchestrator.status": status,
        }
        ok = Status(StatusCode.OK) if status == "succeeded" else Status(StatusCode.ERROR, status)
        start = ended_at if started_at is None else started_at
        self._export(f"execution {workflow}", context, parent, attributes, ok, start, ended_at)

    def step_traced(
        self,
        execution_id: str,
        workflow: str,
        step: str,
        connector: str,
        attempt: int,
        traceparent: str | None,
        outcome: StepOutcome,
        error: str | None,
        started_at: float,
        ended_at: float,
    ) -> None:
        trace_id, _ = self._parent(execution_id, traceparent)
        parent = SpanContext(trace_id, int(execution_span_id(execution_id), 16), False, SAMPLED)
        context = SpanContext(trace_id, int(attempt_span_id(execution_id, step, attempt), 16), False, SAMPLED)
        attributes: dict[str, str | int] = {
            "orchestrator.execution_id": execution_id,
            "orchestrator.workflow": workflow,
            "orchestrator.step": step,
            "orchestrator.connector": connector,
            "orchestrator.attempt": attempt,
            "orchestrator.outcome": outcome,
        }
        if error is not None:
            attributes["error.type"] = error
        ok = Status(StatusCode.OK) if outcome == "succeeded" else Status(StatusCode.ERROR, error or outcome)
        self._export(f"step {step}", context, parent, attributes, ok, started_at, ended_at)
