"""W3C Trace Context ``traceparent`` values: parsed, checked and continued.

``version-traceid-parentid-flags``, e.g. ``00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01``
(https://www.w3.org/TR/trace-context/). Pure: a child span id is given by the caller.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

HEADER = "traceparent"
_PATTERN = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero: the caller's span
    flags: str  # 2 hex digits; 01: sampled

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self, span_id: str) -> TraceParent:
        """The same trace, continued by a new span (16 hex digits, from the caller)."""
        if not re.fullmatch(r"[0-9a-f]{16}", span_id) or span_id == _ZERO_SPAN:
            raise ValueError(f"not a span id: {span_id!r}")
        return TraceParent(self.trace_id, span_id, self.flags)


def parse(value: str | None) -> TraceParent | None:
    """The trace context of a header value; None when absent or invalid (the spec says to
    ignore an invalid one and start a new trace, never to fail the request)."""
    if not value:
        return None
    match = _PATTERN.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, flags)


def start_metadata(value: str | None) -> dict[str, str]:
    """What a start records of an inbound ``traceparent`` (its normalised form), or nothing."""
    parsed = parse(value)
    return {HEADER: str(parsed)} if parsed is not None else {}


def outbound(value: str | None, span_id: str) -> str | None:
    """The ``traceparent`` an outbound call carries: the execution's trace, a new span."""
    parsed = parse(value)
    return str(parsed.child(span_id)) if parsed is not None else None


def header_value(headers: Mapping[str, str]) -> str | None:
    """The ``traceparent`` among message headers, whatever their case."""
    for name, value in headers.items():
        if name.lower() == HEADER:
            return value
    return None


def trace_id_of(value: str | None) -> str | None:
    """The trace id of a ``traceparent`` value (None when absent or invalid)."""
    parsed = parse(value)
    return parsed.trace_id if parsed is not None else None


def derived_id(digits: int, *parts: str | int) -> str:
    """``digits`` hex digits derived from ``parts`` (never all zero): the span id of an execution
    or of a step attempt, the same in every process, so a step's span names its execution's span
    as parent and a call the step makes names the step's span, with no state shared."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:digits]
    return digest if digest.strip("0") else "1".rjust(digits, "0")


def execution_span_id(execution_id: str) -> str:
    return derived_id(16, "execution", execution_id)


def attempt_span_id(execution_id: str, step: str, attempt: int) -> str:
    return derived_id(16, "attempt", execution_id, step, attempt)


def execution_trace_id(execution_id: str) -> str:
    """The trace of an execution started without a trace context."""
    return derived_id(32, "trace", execution_id)
