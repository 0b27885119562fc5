"""Execution state and ``evolve``: the pure fold of events. No I/O, no clock, no randomness."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.core import events as ev
from orchestrator.core.events import EventLike

# Caps that keep one execution's state bounded. They are part of the machine: changing them
# changes what a replay folds and decides, so they are constants here, never settings.
MAX_BUFFERED_SIGNALS = 1_000  # signals waiting for a step; ``decide`` refuses one more (SignalBufferFull)
MAX_EVENT_IDS = 10_000  # delivered event ids remembered for dedup, the oldest forgotten first


class HistoryError(ValueError):
    """Events that cannot be folded: out of order, or not an execution's history."""


@dataclass(frozen=True, slots=True)
class Timer:
    timer_id: str
    step: str
    due: float
    purpose: str  # wait | retry | timeout | event_timeout | start


@dataclass(frozen=True, slots=True)
class ActiveStep:
    """A step that has started and not finished."""

    step: str
    kind: str
    visit: int
    attempt: int = 0
    attempt_id: str = ""
    phase: str = "running"  # running | retry_wait
    event: str | None = None
    correlation_key: str | None = None
    child_id: str | None = None
    args: Any = None


@dataclass(frozen=True)
class ExecutionState:
    """Everything known about one execution; treat the mappings as read-only.

    Not slotted on purpose: the fold makes a new state per event, and copying an instance
    ``__dict__`` (see :func:`replaced`) costs a fraction of setting some thirty slots one by one."""

    execution_id: str
    workflow: str
    version: int
    tenant: str
    input: Any
    sequence: int = 0
    status: str = "running"
    outputs: dict[str, Any] = field(default_factory=dict)
    active: dict[str, ActiveStep] = field(default_factory=dict)
    joins: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    timers: dict[str, Timer] = field(default_factory=dict)
    visits: dict[str, int] = field(default_factory=dict)
    signals: tuple[tuple[str, Any], ...] = ()
    last_step: str | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    parent: dict[str, str] | None = None
    dedup_key: str | None = None
    # ids of delivered events and signals, oldest first (redeliveries are ignored); the last
    # MAX_EVENT_IDS only: an id older than that is forgotten and would be taken again
    event_ids: tuple[str, ...] = ()
    reuse: dict[str, Any] = field(default_factory=dict)  # redrive: step -> recorded output
    started_by: str | None = None  # the actor of the start; step tasks run on its behalf
    traceparent: str | None = None  # W3C trace context the execution was started with, if any
    # Concurrency slots (docs/resources.md): what the definition's limits asked for at the start
    # (one dict per limit: key, limit, scope, on_limit, release_while_waiting), the keys held and
    # the keys waited for, and the steps entered once the wait ends. Empty without limits.
    slots: tuple[dict[str, Any], ...] = ()
    held: tuple[str, ...] = ()
    queued: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()
    priority: float = 0
    queued_at: float | None = None  # when the current wait for slots began
    admitted_at: float | None = None  # when the slots were last granted
    admissions: int = 0  # ExecutionAdmitted events so far: the ticket a grant must name
    # Debounce (docs/resources.md): the key value of a debounced start, and how many later starts
    # took its place (each replaced the input and pushed the start timer back).
    debounce_key: str | None = None
    debounced: int = 0

    @property
    def debouncing(self) -> bool:
        """Still in its quiet period: a later start with the same key takes its place."""
        return not self.terminal and any(t.purpose == "debounce" for t in self.timers.values())

    @property
    def terminal(self) -> bool:
        return self.status != "running"

    @property
    def shown_status(self) -> str:
        """The status as shown: ``queued`` while a running execution waits for slots."""
        return "queued" if self.queued and not self.terminal else self.status

    def context(self) -> dict[str, Any]:
        """What expressions see."""
        return {
            "input": self.input,
            "steps": self.outputs,
            "execution": {
                "id": self.execution_id,
                "workflow": self.workflow,
                "version": self.version,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "workflow": self.workflow,
            "version": self.version,
            "tenant": self.tenant,
            "status": self.shown_status,
            "sequence": self.sequence,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "steps": self.outputs,
            "active": {
                name: {"kind": a.kind, "visit": a.visit, "attempt": a.attempt, "phase": a.phase}
                for name, a in self.active.items()
            },
            "timers": {
                t.timer_id: {"step": t.step, "due": t.due, "purpose": t.purpose} for t in self.timers.values()
            },
            "parent": self.parent,
            "started_by": self.started_by,
            **({"slots": self.slots_view()} if self.slots else {}),
        }

    def slots_view(self) -> dict[str, Any]:
        return {
            "keys": [slot["key"] for slot in self.slots],
            "held": list(self.held),
            "queued": list(self.queued),
            "queued_at": self.queued_at if self.queued else None,
            "priority": self.priority,
        }


MISSING: Any = {"__missing__": True}
_Handler = Callable[[ExecutionState, dict[str, Any]], dict[str, Any]]


def fold(events: Any, state: ExecutionState | None = None) -> ExecutionState | None:
    """Fold a sequence of events onto a state (None: from the beginning)."""
    for event in events:
        state = evolve(state, event)
    return state


def _traceparent(started: dict[str, Any]) -> str | None:
    """The ``traceparent`` recorded in a start's metadata (see docs/observability.md)."""
    metadata = started.get("metadata")
    value = metadata.get("traceparent") if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def evolve(state: ExecutionState | None, event: EventLike) -> ExecutionState:
    """Apply one event. ``started_by`` is the ``actor`` of a recorded start's envelope (None
    when folding bare domain events; the engine sets it from the start command)."""
    data = event.data
    if state is None:
        if event.type != ev.EXECUTION_STARTED:
            raise HistoryError(f"a history must begin with {ev.EXECUTION_STARTED}, not {event.type}")
        return ExecutionState(
            execution_id=data["execution_id"],
            workflow=data["workflow"],
            version=data["version"],
            tenant=data.get("tenant", "default"),
            input=data.get("input"),
            sequence=1,
            parent=data.get("parent"),
            dedup_key=data.get("dedup_key"),
            reuse=dict(data.get("reuse") or {}),
            started_by=getattr(event, "actor", None),
            traceparent=_traceparent(data),
            debounce_key=data.get("debounce_key"),
        )
    handler = _HANDLERS.get(event.type)
    if handler is None:
        raise HistoryError(f"unknown event type {event.type!r}")
    changes = handler(state, data)
    changes["sequence"] = state.sequence + 1
    return replaced(state, changes)


def replaced(state: ExecutionState, changes: dict[str, Any]) -> ExecutionState:
    """``dataclasses.replace`` for the fold's hot path: the state has no ``__post_init__`` and
    no init-only fields, so the new instance is the old one's fields updated with ``changes``
    (every key a field name: the handlers below produce nothing else)."""
    new = object.__new__(ExecutionState)
    fields_of = new.__dict__  # frozen: filled around the generated __setattr__
    fields_of.update(state.__dict__)
    fields_of.update(changes)
    return new


def _without_step_timers(timers: dict[str, Timer], step: str) -> dict[str, Timer]:
    return {tid: t for tid, t in timers.items() if t.step != step}


def _step_scheduled(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    step = d["step"]
    timers = _without_step_timers(s.timers, step)
    if d.get("deadline") is not None:
        tid = f"{d['attempt_id']}:timeout"
        timers[tid] = Timer(tid, step, d["deadline"], "timeout")
    active = ActiveStep(step, "task", d["visit"], d["attempt"], d["attempt_id"], args=d.get("args"))
    return dict(active={**s.active, step: active}, timers=timers, visits={**s.visits, step: d["visit"]})


def _step_succeeded(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    step = d["step"]
    active = dict(s.active)
    active.pop(step, None)
    joins = s.joins
    if step in joins:
        joins = {k: v for k, v in joins.items() if k != step}
    changes = dict(
        active=active,
        joins=joins,
        timers=_without_step_timers(s.timers, step),
        outputs={**s.outputs, step: d.get("output")},
        last_step=step,
    )
    if d.get("reused"):  # a redrive took the recorded output: that was the step's first visit
        changes["visits"] = {**s.visits, step: s.visits.get(step, 0) + 1}
    return changes


def _step_failed(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    step = d["step"]
    timers = _without_step_timers(s.timers, step)
    retry = d.get("retry")
    if retry:
        current = s.active[step]
        timers[retry["timer_id"]] = Timer(retry["timer_id"], step, retry["due"], "retry")
        return dict(active={**s.active, step: replace(current, phase="retry_wait")}, timers=timers)
    abandoned = set(d.get("abandoned", ())) | {step}
    return dict(
        active={k: v for k, v in s.active.items() if k not in abandoned},
        joins={k: v for k, v in s.joins.items() if k not in abandoned},
        timers={tid: t for tid, t in timers.items() if t.step not in abandoned},
        outputs={**s.outputs, step: {"error": d["error"]}},
        last_step=step,
    )


def _timer_scheduled(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    step = d["step"]
    timer = Timer(d["timer_id"], step, d["due"], d["purpose"])
    active = ActiveStep(step, "wait", d["visit"])
    return dict(
        active={**s.active, step: active},
        timers={**s.timers, timer.timer_id: timer},
        visits={**s.visits, step: d["visit"]},
    )


def _timer_fired(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    return dict(timers={k: v for k, v in s.timers.items() if k != d["timer_id"]})


def _choice_made(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    return dict(visits={**s.visits, d["step"]: d["visit"]})


def _parallel_started(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    step = d["step"]
    return dict(
        active={**s.active, step: ActiveStep(step, "parallel", d["visit"])},
        joins={**s.joins, step: (MISSING,) * d["branches"]},
        visits={**s.visits, step: d["visit"]},
    )


def _branch_completed(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    step, branch = d["step"], d["branch"]
    results = list(s.joins[step])
    results[branch] = d.get("output")
    return dict(joins={**s.joins, step: tuple(results)})


def _event_awaited(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    step = d["step"]
    timers = dict(s.timers)
    if d.get("timer_id"):
        timers[d["timer_id"]] = Timer(d["timer_id"], step, d["due"], "event_timeout")
    active = ActiveStep(
        step,
        "wait_for_event",
        d["visit"],
        event=d["event"],
        correlation_key=d.get("correlation_key"),
    )
    return dict(active={**s.active, step: active}, timers=timers, visits={**s.visits, step: d["visit"]})


def _remembered(event_ids: tuple[str, ...], event_id: str) -> tuple[str, ...]:
    """``event_ids`` plus one, the oldest dropped past MAX_EVENT_IDS (FIFO)."""
    if len(event_ids) >= MAX_EVENT_IDS:
        return (*event_ids[len(event_ids) - MAX_EVENT_IDS + 1 :], event_id)
    return (*event_ids, event_id)


def _event_received(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if d.get("event_id") is not None:
        changes["event_ids"] = _remembered(s.event_ids, d["event_id"])
    index = d.get("buffered")
    if index is not None:
        changes["signals"] = s.signals[:index] + s.signals[index + 1 :]
    return changes


def _signal_received(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {"signals": (*s.signals, (d["name"], d.get("payload")))}
    if d.get("event_id") is not None:
        changes["event_ids"] = _remembered(s.event_ids, d["event_id"])
    return changes


def _child_started(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    step = d["step"]
    active = ActiveStep(step, "subworkflow", d["visit"], child_id=d["child_id"], args=d.get("input"))
    return dict(active={**s.active, step: active}, visits={**s.visits, step: d["visit"]})


def _execution_queued(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    known = {slot["key"] for slot in s.slots}
    asked = [slot for slot in d.get("slots", ()) if slot["key"] not in known]
    keys = [slot["key"] for slot in d.get("slots", ())]
    changes: dict[str, Any] = dict(
        queued=(*s.queued, *(k for k in keys if k not in s.queued)),
        deferred=(*s.deferred, d["step"]),
    )
    if asked:
        changes["slots"] = (*s.slots, *asked)
    if "priority" in d:
        changes["priority"] = d["priority"]
    if not s.queued:
        changes["queued_at"] = d.get("queued_at")
    return changes


def _execution_admitted(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    held = (*s.held, *(k for k in d["keys"] if k not in s.held))
    admitted = d.get("admitted_at")
    return dict(held=held, queued=(), deferred=(), queued_at=None, admitted_at=admitted, admissions=s.admissions + 1)


def _slots_released(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    return dict(held=tuple(k for k in s.held if k not in d["keys"]))


def _start_debounced(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
    """The input is the later start's; its quiet period's timer goes (a new one follows)."""
    timers = {tid: t for tid, t in s.timers.items() if t.purpose != "debounce"}
    return dict(input=d.get("input"), timers=timers, debounced=s.debounced + 1)


def _terminal(status: str) -> _Handler:
    def apply(s: ExecutionState, d: dict[str, Any]) -> dict[str, Any]:
        return dict(
            status=status,
            active={},
            timers={},
            joins={},
            output=d.get("output"),
            error=d.get("error"),
            held=(),  # the end of an execution gives back every slot it held or waited for
            queued=(),
            deferred=(),
        )

    return apply


_HANDLERS: dict[str, _Handler] = {
    ev.STEP_SCHEDULED: _step_scheduled,
    ev.STEP_SUCCEEDED: _step_succeeded,
    ev.STEP_FAILED: _step_failed,
    ev.TIMER_SCHEDULED: _timer_scheduled,
    ev.TIMER_FIRED: _timer_fired,
    ev.CHOICE_MADE: _choice_made,
    ev.PARALLEL_STARTED: _parallel_started,
    ev.BRANCH_COMPLETED: _branch_completed,
    ev.EVENT_AWAITED: _event_awaited,
    ev.EVENT_RECEIVED: _event_received,
    ev.SIGNAL_RECEIVED: _signal_received,
    ev.CHILD_STARTED: _child_started,
    ev.EXECUTION_QUEUED: _execution_queued,
    ev.EXECUTION_ADMITTED: _execution_admitted,
    ev.SLOTS_RELEASED: _slots_released,
    ev.START_DEBOUNCED: _start_debounced,
    ev.EXECUTION_SUCCEEDED: _terminal("succeeded"),
    ev.EXECUTION_FAILED: _terminal("failed"),
    ev.EXECUTION_CANCELLED: _terminal("cancelled"),
}

