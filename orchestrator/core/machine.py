"""``decide``: state + command -> new events. Pure: time and ids come from the command.

The decision is built event by event: each emitted event is folded into a working state at
once, so later choices in the same decision see its effect (visits, outputs, joins).
"""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import UTC, datetime
from typing import Any

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
    RefuseAdmission,
    StartExecution,
)
from orchestrator.core.events import Event
from orchestrator.core.slots import priority_of, slots_for
from orchestrator.core.state import MAX_BUFFERED_SIGNALS, MISSING, ExecutionState, evolve
from schemas import strict_json
from schemas.definition import (
    ChoiceStep,
    ParallelStep,
    RetryPolicy,
    SubworkflowStep,
    SucceedStep,
    TaskStep,
    WaitForEventStep,
    WaitStep,
)
from schemas.definition import (
    FailStep as FailStepDef,
)
from schemas.expressions import RESULT_DEPTH, ExpressionError, evaluate, evaluate_mapping, truthy
from schemas.graph import Scope, WorkflowGraph
from schemas.secrets import evaluate_input

CHILD_NAMESPACE = uuid.UUID("6f1c1f3e-6b8a-4c55-9d0e-2b7c3c1b9a10")
MAX_TRANSITIONS_PER_DECISION = 1000
MIN_TIMESTAMP, MAX_TIMESTAMP = -62_135_596_800, 253_402_300_799  # years 1 to 9999 (RFC 3339)
MAX_STEPS_ENTERED_PER_DECISION = 100  # a loop of choices without a task would never stop
# Step kinds a redrive may take from the original instead of running (choice, parallel,
# succeed and fail are always re-evaluated: they are cheap and depend on the new input).
REUSABLE_STEPS = (TaskStep, SubworkflowStep, WaitStep, WaitForEventStep)


class CommandRejected(ValueError):
    """The command does not apply to this execution (e.g. cancelling a finished one)."""


class ExecutionExists(CommandRejected):
    """A start for an execution id that already has a history (a duplicate start)."""


class SignalBufferFull(CommandRejected):
    """A signal no step waits for, while MAX_BUFFERED_SIGNALS signals are buffered already."""


def decide(graph: WorkflowGraph, state: ExecutionState | None, command: Command) -> list[Event]:
    """The events that ``command`` causes. An empty list means the command is stale."""
    return decide_and_evolve(graph, state, command)[0]


def decide_and_evolve(
    graph: WorkflowGraph, state: ExecutionState | None, command: Command
) -> tuple[list[Event], ExecutionState | None]:
    """``decide``, plus the state after its events (saves folding them a second time)."""
    if isinstance(command, StartExecution):
        if state is not None:
            raise ExecutionExists(f"execution {command.execution_id} already exists")
        return _Decision.start(graph, command)
    if state is None:
        raise CommandRejected(f"execution {command.execution_id} does not exist")
    if isinstance(command, DeliverEvent) and command.event_id is not None and command.event_id in state.event_ids:
        return [], state  # a redelivery (also after the execution finished): taken already
    if state.terminal:
        direct_signal = isinstance(command, DeliverEvent) and command.correlation_key is None
        if isinstance(command, CancelExecution) or direct_signal:
            raise CommandRejected(f"execution {state.execution_id} is already {state.status}")
        return [], state
    decision = _Decision(graph, state, command.now)
    decision.handle(command)
    decision.release_if_waiting()
    return decision.events, decision.state


def fail_execution(state: ExecutionState, error: ErrorInfo) -> tuple[list[Event], ExecutionState]:
    """The execution failed from outside its steps (a limit reached): one ``ExecutionFailed``."""
    event = Event(ev.EXECUTION_FAILED, {"error": error.to_dict(), "step": None})
    return [event], evolve(state, event)


def idempotency_key(execution_id: str, step: str, visit: int) -> str:
    """The same for every attempt of one visit of a step: connectors use it to dedupe."""
    return f"{execution_id}:{step}:{visit}"


def backoff_delay(policy: RetryPolicy, attempt: int, seed: str) -> float:
    """Delay before the attempt after ``attempt``; jitter is derived from ``seed`` (no randomness)."""
    b = policy.backoff
    try:
        delay = min(b.initial_seconds * b.multiplier ** (attempt - 1), b.max_seconds)
    except OverflowError:
        delay = b.max_seconds
    if policy.jitter:
        fraction = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4]) / 2**32
        delay *= 1 - policy.jitter * fraction
    return delay


def should_retry(policy: RetryPolicy, attempt: int, error: ErrorInfo) -> bool:
    from fnmatch import fnmatchcase

    if attempt >= policy.max_attempts:
        return False
    if any(fnmatchcase(error.type, pattern) for pattern in policy.non_retryable):
        return False
    if policy.retry_on is None:
        return error.retryable
    return any(fnmatchcase(error.type, pattern) for pattern in policy.retry_on)


class _Decision:
    def __init__(self, graph: WorkflowGraph, state: ExecutionState, now: float) -> None:
        self.graph = graph
        self.state = state
        self.now = now
        self.events: list[Event] = []
        self.entered = 0

    @classmethod
    def start(cls, graph: WorkflowGraph, command: StartExecution) -> tuple[list[Event], ExecutionState]:
        data: dict[str, Any] = {
            "execution_id": command.execution_id,
            "workflow": command.workflow,
            "version": command.version,
            "tenant": command.tenant,
            "input": command.input,
        }
        if command.parent is not None:
            data["parent"] = {
                "execution_id": command.parent.execution_id,
                "step": command.parent.step,
            }
        if command.dedup_key is not None:
            data["dedup_key"] = command.dedup_key
        if command.metadata:
            data["metadata"] = command.metadata
        if command.reuse:
            data["reuse"] = command.reuse
        delayed = command.not_before is not None and command.not_before > command.now
        if delayed:
            data["not_before"] = command.not_before
        if command.debounce_key is not None:
            data["debounce_key"] = command.debounce_key
        started = Event(ev.EXECUTION_STARTED, data)
        decision = cls(graph, evolve(None, started), command.now)
        decision.events.append(started)
        if command.debounce_key is not None and delayed:  # the quiet period: later starts may replace it
            decision.schedule_debounce(command.not_before or command.now)
        elif delayed:  # throttled: the first step waits for the start's slot
            timer = {"step": graph.start, "visit": 0, "timer_id": f"{graph.start}:0:start", "due": command.not_before}
            decision.emit(ev.TIMER_SCHEDULED, {**timer, "purpose": "start"})
        elif graph.definition.concurrency:
            decision.queue_first(graph.start)
        else:
            decision.enter(graph.start)
        return decision.events, decision.state

    # -- debounce (docs/resources.md) ------------------------------------------------------

    def schedule_debounce(self, due: float) -> None:
        start = self.graph.start
        timer_id = f"{start}:0:debounce:{self.state.debounced}"  # a new id per push: a stale fire finds none
        self.emit(ev.TIMER_SCHEDULED, {"step": start, "visit": 0, "timer_id": timer_id, "due": due, "purpose": "debounce"})

    def debounce(self, command: DebounceStart) -> None:
        """A later start with the same key: it takes the place of this one while it is quiet."""
        if not self.state.debouncing:
            return  # its period is over (or it ended): the caller starts a new execution
        self.emit(ev.START_DEBOUNCED, {"input": command.input, "due": command.due})
        self.schedule_debounce(command.due)

    # -- concurrency slots (docs/resources.md) ---------------------------------------------

    def queue_first(self, start: str) -> None:
        """A start under concurrency limits waits for its slots before its first step."""
        definition, state = self.graph.definition, self.state
        try:
            slots = slots_for(definition.concurrency, state.context(), state.tenant, state.workflow)
            priority = priority_of(definition.priority, state.context())
        except ExpressionError as exc:
            self.fail_scope(None, {"type": "expression", "message": str(exc), "retryable": False}, None)
            return
        data = {"slots": slots, "priority": priority, "queued_at": self.now, "step": start}
        self.emit(ev.EXECUTION_QUEUED, data)

    def wait_for_slots(self, name: str) -> bool:
        """Entering ``name`` needs slots given back while waiting (or still waited for): queue."""
        state = self.state
        if not state.slots or state.terminal:
            return False
        if state.queued:
            self.emit(ev.EXECUTION_QUEUED, {"slots": [], "step": name})
            return True
        released = [slot for slot in state.slots if slot["key"] not in state.held]
        if not released:
            return False
        self.emit(ev.EXECUTION_QUEUED, {"slots": released, "queued_at": self.now, "step": name})
        return True

    def admit(self) -> None:
        if not self.state.queued or self.state.terminal:
            return
        steps = self.state.deferred
        self.emit(ev.EXECUTION_ADMITTED, {"keys": list(self.state.queued), "admitted_at": self.now})
        for step in steps:
            self.enter(step)

    def refuse(self, reason: str) -> None:
        if not self.state.queued or self.state.terminal:
            return
        error = {"type": "concurrency.limit", "message": reason, "retryable": False}
        self.emit(ev.EXECUTION_FAILED, {"error": error, "step": None})

    def release_if_waiting(self) -> None:
        """Only waiting (timers, events): give back the slots that say release_while_waiting."""
        state = self.state
        if state.terminal or not state.held or state.queued or not state.active:
            return
        if any(active.kind not in ("wait", "wait_for_event") for active in state.active.values()):
            return
        keys = [s["key"] for s in state.slots if s["release_while_waiting"] and s["key"] in state.held]
        if keys:
            self.emit(ev.SLOTS_RELEASED, {"keys": keys, "reason": "waiting"})

    # -- emitting -----------------------------------------------------------------------

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        if len(self.events) >= MAX_TRANSITIONS_PER_DECISION:
            raise CommandRejected("too many transitions in one decision (a loop without a task?)")
        event = Event(type_, data)
        self.state = evolve(self.state, event)
        self.events.append(event)

    # -- commands -----------------------------------------------------------------------

    def handle(self, command: Command) -> None:
        if isinstance(command, CompleteStep):
            self.complete_task(command)
        elif isinstance(command, FailStep):
            self.fail_task(command.step, command.attempt_id, command.error, command.resources)
        elif isinstance(command, FireTimer):
            self.fire_timer(command.timer_id)
        elif isinstance(command, DeliverEvent):
            self.deliver(command)
        elif isinstance(command, ChildFinished):
            self.child_finished(command)
        elif isinstance(command, DebounceStart):
            self.debounce(command)
        elif isinstance(command, AdmitExecution):
            if command.ticket is None or command.ticket == self.state.admissions:
                self.admit()
        elif isinstance(command, RefuseAdmission):
            self.refuse(command.reason)
        elif isinstance(command, CancelExecution):
            self.emit(
                ev.EXECUTION_CANCELLED,
                {
                    "reason": command.reason,
                    "error": {"type": "cancelled", "message": command.reason},
                },
            )
        else:  # pragma: no cover - exhaustive
            raise CommandRejected(f"unknown command {type(command).__name__}")

    def _current_task(self, step: str, attempt_id: str) -> TaskStep | None:
        active = self.state.active.get(step)
        if active is None or active.kind != "task" or active.phase != "running":
            return None
        if active.attempt_id != attempt_id:
            return None
        definition = self.graph.steps.get(step)
        return definition if isinstance(definition, TaskStep) else None

    def complete_task(self, command: CompleteStep) -> None:
        task = self._current_task(command.step, command.attempt_id)
        if task is None:
            return
        output = command.output
        try:
            strict_json.check(output, "output", max_depth=RESULT_DEPTH)
        except strict_json.StrictJSONError as exc:  # it could never be stored: the step failed
            message = f"step {task.name!r}: {exc} (step outputs must be strict JSON)"
            error = ErrorInfo("invalid_output", message[:1000], False)
            self.fail_task(task.name, command.attempt_id, error)
            return
        if task.output:
            try:
                output = evaluate(task.output, {"result": output})
            except ExpressionError as exc:
                self.fail_task(task.name, command.attempt_id, ErrorInfo("expression", str(exc), False))
                return
        data = {"step": task.name, "attempt_id": command.attempt_id, "output": output}
        if command.resources is not None:
            data["resources"] = command.resources
        self.emit(ev.STEP_SUCCEEDED, data)
        self.after(task.name)

    def fail_task(
        self, step: str, attempt_id: str, error: ErrorInfo, resources: dict[str, Any] | None = None
    ) -> None:
        task = self._current_task(step, attempt_id)
        if task is None:
            return
        attempt = self.state.active[step].attempt
        data: dict[str, Any] = {
            "step": step,
            "attempt_id": attempt_id,
            "attempt": attempt,
            "error": error.to_dict(),
        }
        if resources is not None:
            data["resources"] = resources
        if should_retry(task.retry, attempt, error):
            seed = f"{self.state.execution_id}/{attempt_id}"  # executions retry apart
            due = self.now + backoff_delay(task.retry, attempt, seed)
            data["retry"] = {"timer_id": f"{attempt_id}:retry", "due": due}
            self.emit(ev.STEP_FAILED, data)
            return
        self.step_failed(step, data)

    def step_failed(self, step: str, data: dict[str, Any]) -> None:
        """A final failure of ``step``: go to its catch step, else fail its scope."""
        definition = self.graph.step(step)
        data["abandoned"] = self._descendants(step)
        self.emit(ev.STEP_FAILED, data)
        catch = getattr(definition, "on_error", None)
        if isinstance(definition, WaitForEventStep):
            catch = definition.on_timeout
        if catch:
            self.enter(catch)
        else:
            self.fail_scope(self.graph.scopes[step], data["error"], step)

    def fire_timer(self, timer_id: str) -> None:
        timer = self.state.timers.get(timer_id)
        if timer is None:
            return
        self.emit(ev.TIMER_FIRED, {"timer_id": timer_id, "step": timer.step, "purpose": timer.purpose})
        active = self.state.active.get(timer.step)
        if active is None:
            return
        if timer.purpose == "wait":
            self.emit(ev.STEP_SUCCEEDED, {"step": timer.step, "output": None})
            self.after(timer.step)
        elif timer.purpose in ("start", "debounce"):  # a throttled start's slot or a quiet period's end
            if self.graph.definition.concurrency:  # ... once it holds its slots
                self.queue_first(timer.step)
            else:
                self.enter(timer.step)
        elif timer.purpose == "retry":
            task = self.graph.step(timer.step)
            assert isinstance(task, TaskStep)
            self.schedule_task(task, active.visit, active.attempt + 1, active.args)
        elif timer.purpose == "timeout":
            timeout = ErrorInfo("timeout", f"step {timer.step!r} timed out", True)
            self.fail_task(timer.step, active.attempt_id, timeout)
        elif timer.purpose == "event_timeout":
            error = {
                "type": "timeout",
                "message": f"no event {active.event!r} in time",
                "retryable": False,
            }
            self.step_failed(timer.step, {"step": timer.step, "error": error})

    def deliver(self, command: DeliverEvent) -> None:
        event_id = command.event_id
        for name, active in sorted(self.state.active.items()):
            if active.kind != "wait_for_event" or active.event != command.name:
                continue
            if command.correlation_key is not None and active.correlation_key != command.correlation_key:
                continue
            self.receive(name, command.name, command.payload, None, event_id, command.reason)
            return
        if command.correlation_key is None:
            if len(self.state.signals) >= MAX_BUFFERED_SIGNALS:
                raise SignalBufferFull(
                    f"execution {self.state.execution_id} has {len(self.state.signals)} signals "
                    f"buffered (at most {MAX_BUFFERED_SIGNALS}); none is waited for yet"
                )
            signal: dict[str, Any] = {"name": command.name, "payload": command.payload}
            if event_id is not None:
                signal["event_id"] = event_id
            if command.reason:
                signal["reason"] = command.reason
            self.emit(ev.SIGNAL_RECEIVED, signal)

    def receive(
        self,
        step: str,
        name: str,
        payload: Any,
        buffered: int | None,
        event_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        data: dict[str, Any] = {"step": step, "name": name, "payload": payload}
        if buffered is not None:
            data["buffered"] = buffered
        if event_id is not None:
            data["event_id"] = event_id
        if reason:
            data["reason"] = reason
        self.emit(ev.EVENT_RECEIVED, data)
        self.emit(ev.STEP_SUCCEEDED, {"step": step, "output": payload})
        self.after(step)

    def child_finished(self, command: ChildFinished) -> None:
        for name, active in self.state.active.items():
            if active.kind == "subworkflow" and active.child_id == command.child_id:
                if command.status == "succeeded":
                    self.emit(
                        ev.STEP_SUCCEEDED,
                        {"step": name, "child_id": command.child_id, "output": command.output},
                    )
                    self.after(name)
                else:
                    error = command.error or {"type": f"child.{command.status}", "message": ""}
                    self.step_failed(name, {"step": name, "child_id": command.child_id, "error": error})
                return

    # -- moving through the graph -----------------------------------------------------

    def after(self, step: str) -> None:
        """``step`` succeeded: go to its next step or finish its scope."""
        target = getattr(self.graph.step(step), "next", None)
        if target:
            self.enter(target)
        else:
            self.finish_scope(self.graph.scopes[step], self.state.outputs.get(step))

    def finish_scope(self, scope: Scope, output: Any) -> None:
        if scope is None:
            workflow_output = self.graph.definition.output
            if workflow_output:
                try:
                    output = evaluate(workflow_output, self.state.context())
                except ExpressionError as exc:
                    error = {"type": "expression", "message": str(exc), "retryable": False}
                    self.fail_scope(None, error, None)
                    return
            self.emit(ev.EXECUTION_SUCCEEDED, {"output": output})
            return
        parallel, branch = scope
        if parallel not in self.state.joins:
            return
        self.emit(ev.BRANCH_COMPLETED, {"step": parallel, "branch": branch, "output": output})
        results = self.state.joins[parallel]
        if all(result is not MISSING for result in results):
            self.emit(ev.STEP_SUCCEEDED, {"step": parallel, "output": list(results)})
            self.after(parallel)

    def fail_scope(self, scope: Scope, error: dict[str, Any], step: str | None) -> None:
        if scope is None:
            self.emit(ev.EXECUTION_FAILED, {"error": error, "step": step})
            return
        parallel, _ = scope
        if parallel not in self.state.joins:
            return
        self.step_failed(parallel, {"step": parallel, "error": error, "failed_step": step})

    def _descendants(self, parallel: str) -> list[str]:
        """Active steps nested (at any depth) inside ``parallel``."""
        found = []
        for name in self.state.active:
            scope = self.graph.scopes.get(name)
            while scope is not None:
                if scope[0] == parallel:
                    found.append(name)
                    break
                scope = self.graph.scopes.get(scope[0])
        return sorted(found)

    def enter(self, name: str) -> None:
        if self.wait_for_slots(name) or self._reuse(name):
            return
        self.entered += 1
        if self.entered > MAX_STEPS_ENTERED_PER_DECISION:
            message = f"entered {self.entered} steps in one decision: a loop without a task at {name!r}?"
            if self.events[0].type == ev.EXECUTION_STARTED:
                raise CommandRejected(f"too many transitions in one decision ({message})")
            if not self.state.terminal:
                self.emit(ev.EXECUTION_FAILED, {"error": {"type": "loop", "message": message}, "step": name})
            return
        if self.state.terminal:
            return
        step = self.graph.step(name)
        visit = self.state.visits.get(name, 0) + 1
        try:
            self._enter(step, visit)
        except ExpressionError as exc:
            error = {"type": "expression", "message": str(exc), "retryable": False}
            self.fail_scope(self.graph.scopes[name], error, name)

    def _reuse(self, name: str) -> bool:
        """A redrive's recorded output for ``name`` on its first visit: take it, run nothing.

        Not counted against MAX_STEPS_ENTERED_PER_DECISION: each step is reused at most once.
        """
        if name not in self.state.reuse or self.state.visits.get(name, 0) or self.state.terminal:
            return False
        if not isinstance(self.graph.step(name), REUSABLE_STEPS):
            return False
        self.emit(ev.STEP_SUCCEEDED, {"step": name, "output": self.state.reuse[name], "reused": True})
        self.after(name)
        return True

    def _enter(self, step: Any, visit: int) -> None:
        name = step.name
        if isinstance(step, TaskStep):
            args = evaluate_input(step.input, self.state.context())  # secrets stay references
            self.schedule_task(step, visit, 1, args)
        elif isinstance(step, ChoiceStep):
            target = next(
                (r.next for r in step.choices if truthy(evaluate(r.when, self.state.context()))),
                step.default,
            )
            if target is None:
                self.fail_scope(self.graph.scopes[name], {"type": "no_choice_matched", "message": name}, name)
                return
            self.emit(ev.CHOICE_MADE, {"step": name, "visit": visit, "next": target})
            self.enter(target)
        elif isinstance(step, ParallelStep):
            self.emit(ev.PARALLEL_STARTED, {"step": name, "visit": visit, "branches": len(step.branches)})
            for index in range(len(step.branches)):
                if self.state.terminal or name not in self.state.joins:
                    return
                self.enter(self.graph.branch_start(name, index))
        elif isinstance(step, WaitStep):
            due = (
                self.now + step.seconds
                if step.seconds is not None
                else _parse_time(evaluate(step.until or "", self.state.context()))
            )
            self.emit(
                ev.TIMER_SCHEDULED,
                {
                    "step": name,
                    "visit": visit,
                    "timer_id": f"{name}:{visit}:wait",
                    "due": due,
                    "purpose": "wait",
                },
            )
        elif isinstance(step, WaitForEventStep):
            self._await_event(step, visit)
        elif isinstance(step, SubworkflowStep):
            child_id = str(uuid.uuid5(CHILD_NAMESPACE, f"{self.state.execution_id}/{name}/{visit}"))
            self.emit(
                ev.CHILD_STARTED,
                {
                    "step": name,
                    "visit": visit,
                    "child_id": child_id,
                    "workflow": step.workflow,
                    "version": step.version,
                    "input": evaluate_mapping(step.input, self.state.context()),
                },
            )
        elif isinstance(step, SucceedStep):
            output = evaluate(step.output, self.state.context()) if step.output else None
            self.emit(ev.STEP_SUCCEEDED, {"step": name, "output": output})
            self.finish_scope(self.graph.scopes[name], output)
        elif isinstance(step, FailStepDef):
            cause = evaluate(step.cause, self.state.context()) if step.cause else ""
            self.fail_scope(self.graph.scopes[name], {"type": step.error, "message": cause}, name)

    def _await_event(self, step: WaitForEventStep, visit: int) -> None:
        name = step.name
        key = None
        if step.correlation_key:
            value = evaluate(step.correlation_key, self.state.context())
            key = None if value is None else str(value)
        data: dict[str, Any] = {
            "step": name,
            "visit": visit,
            "event": step.event,
            "correlation_key": key,
        }
        if step.timeout_seconds is not None:
            data.update(timer_id=f"{name}:{visit}:event_timeout", due=self.now + step.timeout_seconds)
        self.emit(ev.EVENT_AWAITED, data)
        for index, (signal, payload) in enumerate(self.state.signals):
            if signal == step.event:
                self.receive(name, signal, payload, index)
                return

    def schedule_task(self, task: TaskStep, visit: int, attempt: int, args: Any) -> None:
        attempt_id = f"{task.name}:{visit}:{attempt}"
        data: dict[str, Any] = {
            "step": task.name,
            "visit": visit,
            "attempt": attempt,
            "attempt_id": attempt_id,
            "connector": task.connector,
            "config": task.config,
            "args": args,
            "idempotency_key": idempotency_key(self.state.execution_id, task.name, visit),
            "timeout_seconds": task.timeout_seconds,
        }
        if task.timeout_seconds is not None:
            data["deadline"] = self.now + task.timeout_seconds
        if paths := self.graph.secret_args.get(task.name):  # where the worker puts secrets
            data["secret_args"] = [list(path) for path in paths]
        self.emit(ev.STEP_SCHEDULED, data)


def _parse_time(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:
            raise ExpressionError(f"'until' gave {value!r}: not a time between the years 1 and 9999")
        return float(value)
    if not isinstance(value, str):
        raise ExpressionError(f"'until' must give an ISO-8601 time, got {str(value)[:100]!r}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ExpressionError(f"'until' is not an ISO-8601 time: {value[:100]!r}") from None
    if moment.tzinfo is None:  # naive times are UTC, never the host's zone
        moment = moment.replace(tzinfo=UTC)
    try:
        seconds = moment.timestamp()
    except (OverflowError, ValueError):
        seconds = math.inf
    if not MIN_TIMESTAMP <= seconds <= MAX_TIMESTAMP:  # year 1 or 9999 with an offset
        raise ExpressionError(f"'until' is out of range: {value[:100]!r}")
    return seconds
