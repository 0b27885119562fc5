"""A readable timeline of one execution's history: rows, step spans, durations, waits, retries.

Pure: takes stored envelopes or their CloudEvent dicts (as the REST API returns them) and gives
rows and text lines; no I/O. The CLI's ``run`` and ``history`` commands and the API share it.
A timeline can be built from a page of a history (``build(page, origin=...)``): its rows are that
page's events, its spans the steps whose events it holds (a span whose start is on an earlier page
is left out; one that ends on a later page shows as running).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core import events as ev
from orchestrator.core.timefmt import parse_rfc3339
from schemas.envelope import TYPE_PREFIX, Envelope

DETAIL_WIDTH = 64
_SPAN_KINDS = {
    ev.STEP_SCHEDULED: "task",
    ev.TIMER_SCHEDULED: "wait",
    ev.EVENT_AWAITED: "event",
    ev.PARALLEL_STARTED: "parallel",
    ev.CHILD_STARTED: "child",
}


@dataclass(frozen=True, slots=True)
class Row:
    """One event, ready to print."""

    sequence: int
    offset: float  # seconds since the first event
    type: str
    step: str | None
    attempt: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "offset_seconds": round(self.offset, 6),
            "type": self.type,
            "step": self.step,
            "attempt": self.attempt,
            "detail": self.detail,
        }


@dataclass(slots=True)
class Span:
    """One visit of a step, from its start to its end, with attempts and time spent waiting."""

    step: str
    kind: str  # task | wait | event | parallel | child | reused (taken from a redriven original)
    visit: int
    started: float
    ended: float | None = None
    status: str = "running"  # running | succeeded | failed | timed_out | abandoned | reused
    attempts: int = 0
    waited: float = 0.0  # retry backoff for tasks; the whole span for waits and events
    retry_since: float | None = None

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def to_dict(self) -> dict[str, Any]:
        duration = self.duration
        return {
            "step": self.step,
            "kind": self.kind,
            "visit": self.visit,
            "status": self.status,
            "started_seconds": round(self.started, 6),
            "attempts": self.attempts,
            "retries": self.retries,
            "duration_seconds": None if duration is None else round(duration, 6),
            "waited_seconds": round(self.waited, 6),
        }


@dataclass(slots=True)
class Timeline:
    rows: list[Row] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    status: str = "running"
    next_after: int | None = None  # a page of a longer history: the sequence to read on from

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "events": [row.to_dict() for row in self.rows],
            "steps": [span.to_dict() for span in self.spans],
            "next_after": self.next_after,
        }


def build(events: Iterable[Envelope | Mapping[str, Any]], origin: float | None = None) -> Timeline:
    """Rows and spans of a history (or a slice of one), in sequence order. Offsets count from
    ``origin`` (epoch seconds: the first event's time, for a slice that starts later), else from
    the first event given."""
    timeline = Timeline()
    open_spans: dict[str, Span] = {}
    for sequence, type_, moment, data in sorted(map(_normalize, events), key=lambda e: e[0]):
        origin = moment if origin is None else origin
        offset = moment - origin
        step = data.get("step") if isinstance(data.get("step"), str) else None
        attempt = _track(timeline, open_spans, type_, offset, data)
        detail = _detail(type_, data, moment)
        timeline.rows.append(Row(sequence, offset, type_, step, attempt, detail))
        if type_ in ev.TERMINAL_TYPES:
            timeline.status = ev.STATUS_BY_TERMINAL_TYPE[type_]
            for span in open_spans.values():
                _close(span, offset, "abandoned")
            open_spans.clear()
    return timeline


def moment_of(event: Envelope | Mapping[str, Any]) -> float:
    """An event's time in epoch seconds (0.0 when it has none that parses): a page's ``origin``."""
    return _normalize(event)[2]


def _normalize(event: Envelope | Mapping[str, Any]) -> tuple[int, str, float, dict[str, Any]]:
    if isinstance(event, Envelope):
        sequence, type_, time, data = event.sequence, event.type, event.time, event.data
    else:
        sequence, type_ = int(event.get("sequence", 0)), str(event.get("type", ""))
        time, data = str(event.get("time", "")), event.get("data")
    try:
        moment = parse_rfc3339(time)
    except ValueError:
        moment = 0.0
    return sequence, type_.removeprefix(TYPE_PREFIX), moment, data if isinstance(data, dict) else {}


def _track(
    timeline: Timeline, open_spans: dict[str, Span], type_: str, offset: float, data: dict[str, Any]
) -> int | None:
    """Update the step spans for one event; the attempt number the row should show."""
    step = data.get("step")
    if not isinstance(step, str):
        return None
    span = open_spans.get(step)
    if type_ in _SPAN_KINDS:
        visit = int(data.get("visit", 1))
        if span is None or span.visit != visit:
            span = Span(step, _SPAN_KINDS[type_], visit, offset)
            open_spans[step] = span
            timeline.spans.append(span)
        if type_ == ev.STEP_SCHEDULED:
            span.attempts = int(data.get("attempt", span.attempts + 1))
            if span.retry_since is not None:
                span.waited += offset - span.retry_since
                span.retry_since = None
            return span.attempts
        return None
    if type_ == ev.STEP_SUCCEEDED and data.get("reused"):  # a redrive took the recorded output
        timeline.spans.append(Span(step, "reused", 1, offset, offset, "reused"))
        return None
    if span is None:
        return None
    attempt = span.attempts if span.kind == "task" else None
    if type_ == ev.STEP_SUCCEEDED:
        _close(span, offset, "succeeded")
        del open_spans[step]
    elif type_ == ev.STEP_FAILED and data.get("retry"):
        span.retry_since = offset
    elif type_ == ev.STEP_FAILED:
        error = data.get("error")
        timed_out = isinstance(error, dict) and error.get("type") == "timeout"
        _close(span, offset, "timed_out" if timed_out else "failed")
        del open_spans[step]
        for name in data.get("abandoned", ()):
            inner = open_spans.pop(name, None)
            if inner is not None:
                _close(inner, offset, "abandoned")
    return attempt


def _close(span: Span, offset: float, status: str) -> None:
    span.ended, span.status = offset, status
    if span.kind in ("wait", "event"):
        span.waited = offset - span.started


def _detail(type_: str, data: dict[str, Any], moment: float) -> str:
    """A short, human description of one event."""
    if type_ == ev.EXECUTION_STARTED:
        text = f"{data.get('workflow')} v{data.get('version')} input={compact(data.get('input'))}"
    elif type_ == ev.STEP_SCHEDULED:
        text = f"{data.get('connector')} args={compact(data.get('args'))}"
    elif type_ == ev.STEP_SUCCEEDED:
        text = ("reused " if data.get("reused") else "") + f"output={compact(data.get('output'))}"
    elif type_ == ev.STEP_FAILED:
        text = _error(data.get("error"))
        retry = data.get("retry")
        if isinstance(retry, dict):
            text = f"retry in {seconds(float(retry.get('due', moment)) - moment)}; {text}"
    elif type_ in (ev.TIMER_SCHEDULED, ev.EVENT_AWAITED):
        text = _awaiting(type_, data, moment)
    elif type_ == ev.TIMER_FIRED:
        text = str(data.get("purpose", ""))
    elif type_ == ev.CHOICE_MADE:
        text = f"-> {data.get('next')}"
    elif type_ == ev.PARALLEL_STARTED:
        text = f"{data.get('branches')} branches"
    elif type_ == ev.BRANCH_COMPLETED:
        text = f"branch {data.get('branch')} output={compact(data.get('output'))}"
    elif type_ in (ev.EVENT_RECEIVED, ev.SIGNAL_RECEIVED):
        text = f"{data.get('name')} payload={compact(data.get('payload'))}"
    elif type_ == ev.CHILD_STARTED:
        text = f"{data.get('workflow')} child={data.get('child_id')}"
    elif type_ == ev.EXECUTION_SUCCEEDED:
        text = f"output={compact(data.get('output'))}"
    elif type_ in (ev.EXECUTION_FAILED, ev.EXECUTION_CANCELLED):
        text = _error(data.get("error"))
    else:
        text = compact(data)
    return _clip(text)


def _awaiting(type_: str, data: dict[str, Any], moment: float) -> str:
    if type_ == ev.TIMER_SCHEDULED:
        text = f"{data.get('purpose')} {seconds(float(data.get('due', moment)) - moment)}"
    else:
        text = f"{data.get('event')} key={data.get('correlation_key')}"
    if type_ == ev.EVENT_AWAITED and data.get("due") is not None:
        text += f" timeout {seconds(float(data['due']) - moment)}"
    return text


def _error(error: Any) -> str:
    if not isinstance(error, dict):
        return compact(error)
    message = error.get("message") or ""
    return f"{error.get('type')}: {message}" if message else str(error.get("type"))


def compact(value: Any, width: int = DETAIL_WIDTH) -> str:
    """One-line JSON, clipped to ``width`` characters."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return _clip(text, width)


def _clip(text: str, width: int = DETAIL_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def seconds(value: float) -> str:
    """A duration for humans: ``850ms``, ``1.25s``, ``3m05s``."""
    if value < 0:
        value = 0.0
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.2f}s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes}m{rest:02d}s"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Left-aligned columns separated by two spaces; None prints as ``-``."""
    cells = [[str(h) for h in headers]]
    cells += [["-" if value is None else str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


@dataclass(frozen=True, slots=True)
class Table:
    """Rows under headers, apart from their layout: ``lines()`` aligns them as text, the CLI
    draws them as a terminal table."""

    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def lines(self) -> list[str]:
        return format_table(self.headers, self.rows)


Block = str | Table  # a line of text or a table, in the order they are shown


def lines_of(blocks: Iterable[Block]) -> list[str]:
    """Blocks as text lines, tables aligned by ``format_table``."""
    lines: list[str] = []
    for block in blocks:
        lines += block.lines() if isinstance(block, Table) else [block]
    return lines


def blocks(timeline: Timeline) -> list[Block]:
    """The event table, then the step table (durations, waits, retries)."""
    shown: list[Block] = [
        Table(
            ("SEQ", "TIME", "EVENT", "STEP", "ATTEMPT", "DETAIL"),
            tuple(
                (r.sequence, f"+{r.offset:.3f}s", r.type, r.step, r.attempt, r.detail) for r in timeline.rows
            ),
        )
    ]
    if timeline.spans:
        spans = tuple(
            (
                s.step if s.visit == 1 else f"{s.step}#{s.visit}",
                s.kind,
                s.status,
                s.attempts or None,
                s.retries or None,
                None if s.duration is None else seconds(s.duration),
                seconds(s.waited) if s.waited else None,
            )
            for s in timeline.spans
        )
        shown += ["", Table(("STEP", "KIND", "STATUS", "ATTEMPTS", "RETRIES", "DURATION", "WAITED"), spans)]
    return shown


def render(timeline: Timeline) -> list[str]:
    """The event table, then the step table, as text lines."""
    return lines_of(blocks(timeline))
