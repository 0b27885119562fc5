"""Replay a recorded history through the current machine and report the first divergence.

A history is a series of decisions. Each decision begins with the event caused by the outside
input that triggered it (a start, a worker's answer, a timer, an event or signal, a child's
result, a cancel). We rebuild that command from the event, run ``decide`` on the state folded
from everything before it, and compare the events it yields with the recorded ones. The machine
itself says how long each decision is; the recorded events (not the re-derived ones) are folded
to move on, so the history stays the source of truth.

Pure: no I/O, no clock. ``now`` comes from the envelope's RFC 3339 ``time``, which the engine
stamps with microsecond precision; ``due``/``deadline`` values are compared to within that
precision, so a clock with finer resolution does not read as a divergence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.core import events as ev
from orchestrator.core.commands import (
    AdmitExecution,
    CancelExecution,
    ChildFinished,
    Command,
    CompleteStep,
    DebounceStart,
    DeliverEvent,
    ErrorInfo,
    FailStep,
    FireTimer,
    ParentRef,
    RefuseAdmission,
    StartExecution,
)
from orchestrator.core.events import Event
from orchestrator.core.machine import decide
from orchestrator.core.state import ExecutionState, HistoryError, fold
from orchestrator.core.timefmt import parse_rfc3339
from schemas.definition import TaskStep
from schemas.graph import WorkflowGraph

TIME_KEYS = frozenset({"due", "deadline", "queued_at", "admitted_at"})
TIME_TOLERANCE = 1e-6  # the envelope's time has microsecond precision


class Stamped(Protocol):
    """A recorded event as the engine stamps it (``schemas.envelope.Envelope`` is one)."""

    @property
    def type(self) -> str: ...

    @property
    def data(self) -> Any: ...

    @property
    def sequence(self) -> int: ...

    @property
    def time(self) -> str: ...

    @property
    def actor(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where the current machine and a recorded history part ways."""

    sequence: int  # the recorded sequence where they differ (last + 1: the history ended)
    expected: Event | None  # what the machine decides there; None: nothing
    recorded: Event | None  # what the history holds there; None: the history ended
    reason: str

    def __str__(self) -> str:
        return f"diverged at sequence {self.sequence}: {self.reason}"


class _NoCommand(ValueError):
    """The recorded event cannot begin a decision."""


def replay_state(envelopes: Iterable[Stamped], at_sequence: int | None = None) -> ExecutionState:
    """The state after the recorded events (up to and including ``at_sequence``)."""
    chosen = [e for e in envelopes if at_sequence is None or e.sequence <= at_sequence]
    state = fold(chosen)
    if state is None:
        raise HistoryError("no events to replay")
    return state


def verify_history(graph: WorkflowGraph, envelopes: Sequence[Stamped]) -> Divergence | None:
    """Re-derive every decision of a history; the first difference, or None when it matches."""
    for position, envelope in enumerate(envelopes, start=1):
        if envelope.sequence != position:
            reason = f"sequence {envelope.sequence} where {position} was expected"
            return Divergence(envelope.sequence, None, _event(envelope), reason)
    state: ExecutionState | None = None
    index = 0
    while index < len(envelopes):
        first = envelopes[index]
        try:
            produced = decide(_graph_for(graph, first), state, _command_for(state, first))
        except _NoCommand as exc:
            return Divergence(first.sequence, None, _event(first), str(exc))
        except Exception as exc:  # the current machine cannot take this history at all
            reason = f"replaying {first.type} raised {type(exc).__name__}: {exc}"
            return Divergence(first.sequence, None, _event(first), reason)
        if not produced:
            reason = f"the machine now ignores the command behind the recorded {first.type}"
            return Divergence(first.sequence, None, _event(first), reason)
        divergence = _compare(produced, envelopes, index, envelopes[-1].sequence + 1)
        if divergence is not None:
            return divergence
        try:
            state = fold(envelopes[index : index + len(produced)], state)
        except (HistoryError, KeyError) as exc:
            return Divergence(first.sequence, None, _event(first), f"cannot fold: {exc!r}")
        index += len(produced)
    return None


def _compare(
    produced: list[Event], recorded: Sequence[Stamped], start: int, end: int
) -> Divergence | None:
    """Compare the decided events with the recorded ones from ``start`` on (no copying)."""
    for offset, event in enumerate(produced):
        if start + offset >= len(recorded):
            return Divergence(end, event, None, f"the machine decides {event.type} after the end")
        envelope = recorded[start + offset]
        if event.type != envelope.type:
            reason = f"the machine decides {event.type}, the history holds {envelope.type}"
            return Divergence(envelope.sequence, event, _event(envelope), reason)
        difference = _difference(_plain(event.data), _plain(envelope.data), "data")
        if difference is not None:
            return Divergence(envelope.sequence, event, _event(envelope), f"{event.type}.{difference}")
    return None


def _command_for(state: ExecutionState | None, envelope: Stamped) -> Command:
    """The command behind the decision that ``envelope`` begins."""
    data: dict[str, Any] = envelope.data if isinstance(envelope.data, dict) else {}
    base: dict[str, Any] = {
        "execution_id": state.execution_id if state else data.get("execution_id", ""),
        "now": parse_rfc3339(envelope.time),
        "actor": envelope.actor,
    }
    kind, step = envelope.type, data.get("step", "")
    if kind == ev.EXECUTION_STARTED:
        parent = data.get("parent")
        return StartExecution(
            **base,
            workflow=data["workflow"],
            version=data["version"],
            input=data.get("input"),
            tenant=data.get("tenant", "default"),
            dedup_key=data.get("dedup_key"),
            parent=ParentRef(parent["execution_id"], parent["step"]) if parent else None,
            metadata=data.get("metadata", {}),
            reuse=data.get("reuse", {}),
            not_before=data.get("not_before"),
            debounce_key=data.get("debounce_key"),
        )
    if state is None:
        raise _NoCommand(f"a history must begin with {ev.EXECUTION_STARTED}, not {kind}")
    if kind == ev.STEP_SUCCEEDED and "attempt_id" in data:
        return CompleteStep(
            **base, step=step, attempt_id=data["attempt_id"], output=data["output"], resources=data.get("resources")
        )
    if kind == ev.STEP_FAILED and "attempt_id" in data:
        e = data["error"]
        error = ErrorInfo(e["type"], e.get("message", ""), e.get("retryable", True))
        return FailStep(
            **base, step=step, attempt_id=data["attempt_id"], error=error, resources=data.get("resources")
        )
    if kind == ev.STEP_SUCCEEDED and "child_id" in data:
        return ChildFinished(**base, child_id=data["child_id"], status="succeeded", output=data["output"])
    if kind == ev.STEP_FAILED and "child_id" in data:
        return ChildFinished(**base, child_id=data["child_id"], status="failed", error=data["error"])
    if kind == ev.TIMER_FIRED:
        return FireTimer(**base, timer_id=data["timer_id"])
    if kind == ev.EVENT_RECEIVED and "buffered" not in data:
        active = state.active.get(step)
        key = active.correlation_key if active is not None else None
        return DeliverEvent(
            **base,
            name=data["name"],
            payload=data["payload"],
            correlation_key=key,
            event_id=data.get("event_id"),
        )
    if kind == ev.SIGNAL_RECEIVED:
        return DeliverEvent(
            **base, name=data["name"], payload=data.get("payload"), event_id=data.get("event_id")
        )
    if kind == ev.EXECUTION_CANCELLED:
        return CancelExecution(**base, reason=data.get("reason", ""))
    if kind == ev.EXECUTION_ADMITTED:
        return AdmitExecution(**base)
    if kind == ev.START_DEBOUNCED:
        return DebounceStart(**base, input=data.get("input"), due=data["due"])
    failure = data.get("error")
    if kind == ev.EXECUTION_FAILED and isinstance(failure, dict) and failure.get("type") == "concurrency.limit":
        return RefuseAdmission(**base, reason=str(failure.get("message", "")))
    raise _NoCommand(f"the machine decides no more events here, the history holds {kind}")


def _graph_for(graph: WorkflowGraph, envelope: Stamped) -> WorkflowGraph:
    """A task's StepSucceeded holds its mapped output, not the worker's result: replay that one
    on the task without its ``output`` expression (the mapping cannot be re-checked)."""
    if envelope.type != ev.STEP_SUCCEEDED or "attempt_id" not in envelope.data:
        return graph
    task = graph.steps.get(envelope.data["step"])
    if not isinstance(task, TaskStep) or task.output is None:
        return graph
    steps = {**graph.steps, task.name: task.model_copy(update={"output": None})}
    return WorkflowGraph(graph.definition, steps, graph.scopes, graph.start)


def _event(envelope: Stamped) -> Event:
    return Event(envelope.type, envelope.data)


def _plain(value: Any) -> Any:
    """Data as it reads back from JSON: tuples are lists, keys are strings."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _difference(expected: Any, recorded: Any, path: str, key: str = "") -> str | None:
    """The first place two plain values differ, described; None when they match."""
    if isinstance(expected, dict) and isinstance(recorded, dict):
        for name in sorted(expected.keys() | recorded.keys()):
            if name not in recorded or name not in expected:
                where = "recorded" if name not in expected else "expected"
                return f"{path}[{name!r}]: only in the {where} event"
            found = _difference(expected[name], recorded[name], f"{path}[{name!r}]", name)
            if found is not None:
                return found
        return None
    if isinstance(expected, list) and isinstance(recorded, list) and len(expected) == len(recorded):
        for i, (a, b) in enumerate(zip(expected, recorded, strict=True)):
            found = _difference(a, b, f"{path}[{i}]", key)
            if found is not None:
                return found
        return None
    if _same_scalar(expected, recorded, key in TIME_KEYS):
        return None
    return f"{path}: the machine decides {expected!r}, the history holds {recorded!r}"


def _same_scalar(expected: Any, recorded: Any, is_time: bool) -> bool:
    if isinstance(expected, bool) or isinstance(recorded, bool):
        return expected is recorded
    numbers = isinstance(expected, int | float) and isinstance(recorded, int | float)
    if is_time and numbers:
        return bool(abs(expected - recorded) <= TIME_TOLERANCE)
    return bool(expected == recorded)
