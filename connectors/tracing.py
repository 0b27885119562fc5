"""The W3C ``traceparent`` an outbound call carries: the execution's trace continued by the step
attempt's span (``schemas.traceparent.attempt_span_id``: the span exported for the attempt when
spans are exported, docs/observability.md). A header the step sets itself wins."""

from __future__ import annotations

from collections.abc import Iterable

from connectors.base import StepCall
from schemas import traceparent

HEADER = traceparent.HEADER


def outbound_traceparent(call: StepCall) -> str | None:
    """None when the execution was started without a trace context."""
    if call.traceparent is None:
        return None
    return traceparent.outbound(
        call.traceparent, traceparent.attempt_span_id(call.execution_id, call.step, call.attempt)
    )


def has_header(names: Iterable[str]) -> bool:
    """Whether ``traceparent`` is among the header names given (any case)."""
    return any(name.lower() == HEADER for name in names)
