"""The critical path of an execution: the chain of steps that bounded its end-to-end time.

Walking back from the execution's end, the step that finished last at or before the current
point is the one the execution waited for; the path continues from that step's start. Time
between steps (scheduling, timers armed between them, the engine's own work) is a ``wait``
segment. Parallel steps are containers: their branches' steps are on the path, not the parallel
step itself, so of two branches the one that finished last is on it. A step's span runs from its
first attempt's scheduling to its outcome, so retries and their backoff count as the step's
time. Pure: spans in, segments out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.core import events as ev
from orchestrator.core.timefmt import parse_rfc3339
from schemas.envelope import Envelope

EPSILON = 1e-6
WAIT = None  # the step of a segment between steps
Span = tuple[str, float, float]  # step, start, end


@dataclass(frozen=True, slots=True)
class Segment:
    step: str | None  # None: waiting between steps
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_dict(self, total: float) -> dict[str, Any]:
        return {
            "step": self.step,
            "start": self.start,
            "seconds": round(self.seconds, 6),
            "share": round(self.seconds / total, 6) if total > 0 else None,
        }


def critical_path(spans: Iterable[Span], start: float, end: float) -> list[Segment]:
    """The segments, oldest first, covering ``start`` to ``end`` (see the module docstring).

    One pass over the spans sorted by end: the point only moves back, so a span that ended after
    it, or that the walk passed over (it started at or after the point), is never waited for
    later; O(n log n) for the sort, then O(n), however many steps an execution ran."""
    ordered = sorted(spans, key=lambda s: (s[2], -s[1]))
    path: list[Segment] = []
    at = end
    top = len(ordered)  # ordered[:top]: the spans still to consider
    while at > start + EPSILON:
        while top and ordered[top - 1][2] > at + EPSILON:  # ended after the point: not waited for here
            top -= 1
        index = top - 1
        while index >= 0 and ordered[index][1] >= at - EPSILON:  # started at or after the point
            index -= 1
        if index < 0:
            path.append(Segment(WAIT, start, at))
            break
        while index and ordered[index - 1][1:] == ordered[index][1:]:  # of equal spans, the first listed
            index -= 1
        step, began, ended = ordered[index]  # of those that ended by the point, the last to end
        if ended < at - EPSILON:
            path.append(Segment(WAIT, ended, at))
        path.append(Segment(step, max(began, start), min(ended, at)))
        at, top = began, index  # the spans above started after the new point: never candidates
    path.reverse()
    return path


def spans_of(events: Sequence[Envelope]) -> tuple[float | None, float | None, list[Span]]:
    """(start, end, finished step spans) of one execution's events, by the fold's rules."""
    start = end = None
    opened: dict[str, float] = {}
    spans: list[Span] = []
    for envelope in events:
        data = envelope.data if isinstance(envelope.data, dict) else {}
        at = parse_rfc3339(envelope.time)
        kind, step = envelope.type, str(data.get("step", ""))
        if kind == ev.EXECUTION_STARTED:
            start = at
        elif kind == ev.STEP_SCHEDULED:
            if not (data.get("attempt", 1) > 1 and step in opened):
                opened[step] = at
        elif kind in (ev.CHILD_STARTED, ev.EVENT_AWAITED) or (
            kind == ev.TIMER_SCHEDULED and data.get("purpose") == "wait"
        ):
            opened[step] = at
        elif kind == ev.STEP_SUCCEEDED or (kind == ev.STEP_FAILED and "retry" not in data):
            began = opened.pop(step, None)
            if began is not None:
                spans.append((step, began, at))
        elif kind in ev.TERMINAL_TYPES:
            end = at
    return start, end, spans


def summary(segments: Sequence[Segment]) -> dict[str, float]:
    """Seconds on the path per step (waits left out)."""
    seconds: dict[str, float] = {}
    for segment in segments:
        if segment.step is not None:
            seconds[segment.step] = seconds.get(segment.step, 0.0) + segment.seconds
    return seconds
