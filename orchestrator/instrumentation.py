"""Instrumentation hooks: what the engine, worker, transports, timers and triggers report.

One small protocol, :class:`Instruments`, of plain method calls with primitive arguments (no
event object is built per call, so reporting to nobody costs a method call). Metrics, logs and
traces implement it at the edge; nothing in the orchestrator imports a metrics library.

Rules every call site relies on:

- **Never raises into the caller.** A broken implementation must not fail a command, a step or
  a trigger. :func:`guarded` wraps an implementation so that any ``Exception`` it raises is
  dropped and logged (at most once a minute per call, with a count of those not logged).
  Every component guards what it is given (``guarded`` is idempotent and returns
  :class:`NoInstruments` and already guarded instruments unchanged).
- **Bounded labels.** Every ``str`` argument comes from a small set: a command class, a backend
  class, a workflow, step, connector or trigger name from a registered definition, a topic, a
  consumer group, or one of the outcome literals below. Never an execution id, a dedup key or
  anything a sender controls.
- **Cheap.** Calls are made inline on the hot path (after the fact, never awaited): an
  implementation must not block or do I/O in them; buffer and export elsewhere.

Wiring is explicit, never global: ``Runtime(settings, instruments=...)`` guards the
implementation and hands it to the engine and the worker as a constructor argument, and to the
backends it opened by URL through :func:`attach`, which sets the ``instruments`` attribute that
an instrumented backend declares (class default: :data:`NO_INSTRUMENTS`). The attribute keeps
every ``from_url`` signature (and every backend a test builds by hand) as it is; a backend that
reports nothing declares nothing and is left alone. Triggers read ``runtime.instruments`` from
the runtime they are built over. Event-log appends are timed by the engine around
``EventLog.append`` (the commit point, where a conflict is interpreted), so every event log,
including ones passed in by hand, reports them without code of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

log = logging.getLogger(__name__)

CommandOutcome = Literal["applied", "conflict_retried", "duplicate", "stale", "rejected", "conflict", "error"]
AppendOutcome = Literal["ok", "conflict", "error"]
StepOutcome = Literal["succeeded", "failed", "retryable", "timeout"]
TriggerOutcome = Literal[
    "started", "duplicate", "delivered", "filtered", "dead_lettered", "rejected", "retried"
]


class Instruments(Protocol):
    """What happened, reported after the fact. Implementations must not raise, block or await."""

    def command_handled(self, kind: str, outcome: CommandOutcome, seconds: float) -> None:
        """The engine handled one command (``kind``: its class, e.g. ``CompleteStep``), including
        the observers that ran after the append. See docs/instrumentation.md for the outcomes."""

    def events_appended(self, backend: str, outcome: AppendOutcome, events: int, seconds: float) -> None:
        """One ``EventLog.append`` of ``events`` events (``backend``: the log's class name)."""

    def step_started(self, workflow: str, step: str, connector: str, attempt: int) -> None:
        """A worker began one attempt of a task step (``attempt`` counts from 1)."""

    def step_finished(
        self, workflow: str, step: str, connector: str, attempt: int, outcome: StepOutcome, seconds: float
    ) -> None:
        """The attempt ended (``seconds``: the connector's run, before its answer is submitted)."""

    def trigger_outcome(self, kind: str, workflow: str, trigger: str, outcome: TriggerOutcome) -> None:
        """One message, delivery or request of a trigger (``kind``: webhook, kafka, amqp,
        kafka_window) reached an outcome; reported once it is durable (or rejected)."""

    def timer_fired(self, backend: str, lateness: float) -> None:
        """A durable timer fired ``lateness`` seconds after it was due (``backend``: the timers' class)."""

    def consumer_lag(self, group: str, topic: str, partition: int, lag: int) -> None:
        """Records behind the partition's high watermark (highwater - position) in ``group``;
        reported about once a second per assigned partition, only while it is assigned."""

    def queue_depth(self, queue: str, depth: int) -> None:
        """Items waiting in an in-process queue (e.g. ``inprocess.tasks``), after each put and take."""

    def execution_started(self, workflow: str) -> None:
        """The engine committed the start of an execution of ``workflow`` (once per execution)."""

    def execution_finished(self, workflow: str, status: str, seconds: float | None) -> None:
        """The engine committed an execution's end (``status``: succeeded, failed, cancelled);
        ``seconds`` since its start, or None when this engine does not know when it started."""

    def step_queued(self, workflow: str, step: str, connector: str, seconds: float) -> None:
        """A task waited ``seconds`` between the commit that scheduled it and a worker starting it."""

    def appends_grouped(self, backend: str, appends: int) -> None:
        """An event log committed ``appends`` appends in one transaction (a group commit)."""

    def timers_pending(self, backend: str, count: int) -> None:
        """Timers armed in this process's timer store, after each change."""

    def waits_parked(self, backend: str, count: int) -> None:
        """(execution, wait key) pairs in this process's wait index, after each change."""

    def transport_lane(self, group: str, topic: str, partition: int, in_flight: int, uncommitted: int) -> None:
        """A Kafka transport partition: records taken and not finished (``in_flight``) and
        records taken past the last committed offset (``uncommitted``); reported with the lag."""

    def execution_traced(
        self, execution_id: str, workflow: str, tenant: str, traceparent: str | None,
        status: str, started_at: float | None, ended_at: float,
    ) -> None:
        """An execution ended (epoch seconds; ``started_at`` None when this engine does not know
        it). For traces: ``execution_id`` and ``traceparent`` are span data, never labels."""

    def step_traced(
        self, execution_id: str, workflow: str, step: str, connector: str, attempt: int,
        traceparent: str | None, outcome: StepOutcome, error: str | None, started_at: float, ended_at: float,
    ) -> None:
        """One attempt of a task step ran from ``started_at`` to ``ended_at`` (epoch seconds);
        ``error``: the failure's type. For traces, like :meth:`execution_traced`."""

    def sla_breached(self, scope: str, workflow: str) -> None:
        """An execution (``scope`` ``execution``) or a step (``step``) took longer than its SLA;
        reported once, by the analytics projection, as it counts the breach."""

    def quota_usage(self, tenant: str, quota: str, usage: int) -> None:
        """A tenant's usage of one quota (``running``, ``starts_per_minute``) as a start checked it."""

    def quota_refused(self, tenant: str, quota: str, status: int) -> None:
        """A start refused by a quota: ``status`` 429 (start rate) or 403 (running, payload_bytes)."""

    def doctor_checked(self, kind: str, leaks: int, fixed: int) -> None:
        """One doctor pass over one kind (timer, wait, task, parked_command, slot): the leaks it
        found held for finished or unknown executions, and how many of them it released."""


class NoInstruments:
    """Reports to nobody: the default. Each call is an empty method."""

    __slots__ = ()

    def command_handled(self, kind: str, outcome: CommandOutcome, seconds: float) -> None:
        pass

    def events_appended(self, backend: str, outcome: AppendOutcome, events: int, seconds: float) -> None:
        pass

    def step_started(self, workflow: str, step: str, connector: str, attempt: int) -> None:
        pass

    def step_finished(
        self, workflow: str, step: str, connector: str, attempt: int, outcome: StepOutcome, seconds: float
    ) -> None:
        pass

    def trigger_outcome(self, kind: str, workflow: str, trigger: str, outcome: TriggerOutcome) -> None:
        pass

    def timer_fired(self, backend: str, lateness: float) -> None:
        pass

    def consumer_lag(self, group: str, topic: str, partition: int, lag: int) -> None:
        pass

    def queue_depth(self, queue: str, depth: int) -> None:
        pass

    def execution_started(self, workflow: str) -> None:
        pass

    def execution_finished(self, workflow: str, status: str, seconds: float | None) -> None:
        pass

    def step_queued(self, workflow: str, step: str, connector: str, seconds: float) -> None:
        pass

    def appends_grouped(self, backend: str, appends: int) -> None:
        pass

    def timers_pending(self, backend: str, count: int) -> None:
        pass

    def waits_parked(self, backend: str, count: int) -> None:
        pass

    def transport_lane(self, group: str, topic: str, partition: int, in_flight: int, uncommitted: int) -> None:
        pass

    def execution_traced(
        self, execution_id: str, workflow: str, tenant: str, traceparent: str | None,
        status: str, started_at: float | None, ended_at: float,
    ) -> None:
        pass

    def step_traced(
        self, execution_id: str, workflow: str, step: str, connector: str, attempt: int,
        traceparent: str | None, outcome: StepOutcome, error: str | None, started_at: float, ended_at: float,
    ) -> None:
        pass

    def sla_breached(self, scope: str, workflow: str) -> None:
        pass

    def quota_usage(self, tenant: str, quota: str, usage: int) -> None:
        pass

    def quota_refused(self, tenant: str, quota: str, status: int) -> None:
        pass

    def doctor_checked(self, kind: str, leaks: int, fixed: int) -> None:
        pass


NO_INSTRUMENTS = NoInstruments()  # stateless, so one instance serves as every default


class Guarded:
    """Forwards every call to ``inner``; an exception it raises is dropped and logged, at most
    once per ``every`` seconds per call name (with how many were not logged meanwhile)."""

    __slots__ = ("_clock", "_every", "_logged_at", "_unlogged", "inner")

    def __init__(
        self, inner: Instruments, *, every: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.inner = inner
        self._every = every
        self._clock = clock
        self._logged_at: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def command_handled(self, kind: str, outcome: CommandOutcome, seconds: float) -> None:
        try:
            self.inner.command_handled(kind, outcome, seconds)
        except Exception as exc:
            self._failed("command_handled", exc)

    def events_appended(self, backend: str, outcome: AppendOutcome, events: int, seconds: float) -> None:
        try:
            self.inner.events_appended(backend, outcome, events, seconds)
        except Exception as exc:
            self._failed("events_appended", exc)

    def step_started(self, workflow: str, step: str, connector: str, attempt: int) -> None:
        try:
            self.inner.step_started(workflow, step, connector, attempt)
        except Exception as exc:
            self._failed("step_started", exc)

    def step_finished(
        self, workflow: str, step: str, connector: str, attempt: int, outcome: StepOutcome, seconds: float
    ) -> None:
        try:
            self.inner.step_finished(workflow, step, connector, attempt, outcome, seconds)
        except Exception as exc:
            self._failed("step_finished", exc)

    def trigger_outcome(self, kind: str, workflow: str, trigger: str, outcome: TriggerOutcome) -> None:
        try:
            self.inner.trigger_outcome(kind, workflow, trigger, outcome)
        except Exception as exc:
            self._failed("trigger_outcome", exc)

    def timer_fired(self, backend: str, lateness: float) -> None:
        try:
            self.inner.timer_fired(backend, lateness)
        except Exception as exc:
            self._failed("timer_fired", exc)

    def consumer_lag(self, group: str, topic: str, partition: int, lag: int) -> None:
        try:
            self.inner.consumer_lag(group, topic, partition, lag)
        except Exception as exc:
            self._failed("consumer_lag", exc)

    def queue_depth(self, queue: str, depth: int) -> None:
        try:
            self.inner.queue_depth(queue, depth)
        except Exception as exc:
            self._failed("queue_depth", exc)

    def execution_started(self, workflow: str) -> None:
        try:
            self.inner.execution_started(workflow)
        except Exception as exc:
            self._failed("execution_started", exc)

    def execution_finished(self, workflow: str, status: str, seconds: float | None) -> None:
        try:
            self.inner.execution_finished(workflow, status, seconds)
        except Exception as exc:
            self._failed("execution_finished", exc)

    def step_queued(self, workflow: str, step: str, connector: str, seconds: float) -> None:
        try:
            self.inner.step_queued(workflow, step, connector, seconds)
        except Exception as exc:
            self._failed("step_queued", exc)

    def appends_grouped(self, backend: str, appends: int) -> None:
        try:
            self.inner.appends_grouped(backend, appends)
        except Exception as exc:
            self._failed("appends_grouped", exc)

    def timers_pending(self, backend: str, count: int) -> None:
        try:
            self.inner.timers_pending(backend, count)
        except Exception as exc:
            self._failed("timers_pending", exc)

    def waits_parked(self, backend: str, count: int) -> None:
        try:
            self.inner.waits_parked(backend, count)
        except Exception as exc:
            self._failed("waits_parked", exc)

    def transport_lane(self, group: str, topic: str, partition: int, in_flight: int, uncommitted: int) -> None:
        try:
            self.inner.transport_lane(group, topic, partition, in_flight, uncommitted)
        except Exception as exc:
            self._failed("transport_lane", exc)

    def execution_traced(
        self, execution_id: str, workflow: str, tenant: str, traceparent: str | None,
        status: str, started_at: float | None, ended_at: float,
    ) -> None:
        try:
            self.inner.execution_traced(execution_id, workflow, tenant, traceparent, status, started_at, ended_at)
        except Exception as exc:
            self._failed("execution_traced", exc)

    def step_traced(
        self, execution_id: str, workflow: str, step: str, connector: str, attempt: int,
        traceparent: str | None, outcome: StepOutcome, error: str | None, started_at: float, ended_at: float,
    ) -> None:
        try:
            self.inner.step_traced(
                execution_id, workflow, step, connector, attempt, traceparent, outcome, error, started_at, ended_at
            )
        except Exception as exc:
            self._failed("step_traced", exc)

    def sla_breached(self, scope: str, workflow: str) -> None:
        try:
            self.inner.sla_breached(scope, workflow)
        except Exception as exc:
            self._failed("sla_breached", exc)

    def quota_usage(self, tenant: str, quota: str, usage: int) -> None:
        try:
            self.inner.quota_usage(tenant, quota, usage)
        except Exception as exc:
            self._failed("quota_usage", exc)

    def quota_refused(self, tenant: str, quota: str, status: int) -> None:
        try:
            self.inner.quota_refused(tenant, quota, status)
        except Exception as exc:
            self._failed("quota_refused", exc)

    def doctor_checked(self, kind: str, leaks: int, fixed: int) -> None:
        try:
            self.inner.doctor_checked(kind, leaks, fixed)
        except Exception as exc:
            self._failed("doctor_checked", exc)

    def _failed(self, call: str, exc: Exception) -> None:
        now = self._clock()
        last = self._logged_at.get(call)
        if last is not None and now - last < self._every:
            self._unlogged[call] = self._unlogged.get(call, 0) + 1
            return
        self._logged_at[call] = now
        unlogged = self._unlogged.pop(call, 0)
        more = f" ({unlogged} more failures of it since the last report)" if unlogged else ""
        log.warning(
            "instruments %s.%s raised; dropped%s", type(self.inner).__name__, call, more, exc_info=exc
        )


def guarded(instruments: Instruments | None) -> Instruments:
    """``instruments`` made safe to call from anywhere (see the module docstring); None: none."""
    if instruments is None:
        return NO_INSTRUMENTS
    if isinstance(instruments, NoInstruments | Guarded | Tee):
        return instruments
    return Guarded(instruments)


class Tee:
    """Forwards every call to each of ``parts`` in turn (metrics and traces of one process)."""

    __slots__ = ("parts",)

    def __init__(self, *parts: Instruments) -> None:
        self.parts = tuple(guarded(part) for part in parts)

    def command_handled(self, kind: str, outcome: CommandOutcome, seconds: float) -> None:
        for part in self.parts:
            part.command_handled(kind, outcome, seconds)

    def events_appended(self, backend: str, outcome: AppendOutcome, events: int, seconds: float) -> None:
        for part in self.parts:
            part.events_appended(backend, outcome, events, seconds)

    def step_started(self, workflow: str, step: str, connector: str, attempt: int) -> None:
        for part in self.parts:
            part.step_started(workflow, step, connector, attempt)

    def step_finished(
        self, workflow: str, step: str, connector: str, attempt: int, outcome: StepOutcome, seconds: float
    ) -> None:
        for part in self.parts:
            part.step_finished(workflow, step, connector, attempt, outcome, seconds)

    def trigger_outcome(self, kind: str, workflow: str, trigger: str, outcome: TriggerOutcome) -> None:
        for part in self.parts:
            part.trigger_outcome(kind, workflow, trigger, outcome)

    def timer_fired(self, backend: str, lateness: float) -> None:
        for part in self.parts:
            part.timer_fired(backend, lateness)

    def consumer_lag(self, group: str, topic: str, partition: int, lag: int) -> None:
        for part in self.parts:
            part.consumer_lag(group, topic, partition, lag)

    def queue_depth(self, queue: str, depth: int) -> None:
        for part in self.parts:
            part.queue_depth(queue, depth)

    def execution_started(self, workflow: str) -> None:
        for part in self.parts:
            part.execution_started(workflow)

    def execution_finished(self, workflow: str, status: str, seconds: float | None) -> None:
        for part in self.parts:
            part.execution_finished(workflow, status, seconds)

    def step_queued(self, workflow: str, step: str, connector: str, seconds: float) -> None:
        for part in self.parts:
            part.step_queued(workflow, step, connector, seconds)

    def appends_grouped(self, backend: str, appends: int) -> None:
        for part in self.parts:
            part.appends_grouped(backend, appends)

    def timers_pending(self, backend: str, count: int) -> None:
        for part in self.parts:
            part.timers_pending(backend, count)

    def waits_parked(self, backend: str, count: int) -> None:
        for part in self.parts:
            part.waits_parked(backend, count)

    def transport_lane(self, group: str, topic: str, partition: int, in_flight: int, uncommitted: int) -> None:
        for part in self.parts:
            part.transport_lane(group, topic, partition, in_flight, uncommitted)

    def execution_traced(
        self, execution_id: str, workflow: str, tenant: str, traceparent: str | None,
        status: str, started_at: float | None, ended_at: float,
    ) -> None:
        for part in self.parts:
            part.execution_traced(execution_id, workflow, tenant, traceparent, status, started_at, ended_at)

    def step_traced(
        self, execution_id: str, workflow: str, step: str, connector: str, attempt: int,
        traceparent: str | None, outcome: StepOutcome, error: str | None, started_at: float, ended_at: float,
    ) -> None:
        for part in self.parts:
            part.step_traced(execution_id, workflow, step, connector, attempt, traceparent, outcome, error, started_at, ended_at)

    def sla_breached(self, scope: str, workflow: str) -> None:
        for part in self.parts:
            part.sla_breached(scope, workflow)

    def quota_usage(self, tenant: str, quota: str, usage: int) -> None:
        for part in self.parts:
            part.quota_usage(tenant, quota, usage)

    def quota_refused(self, tenant: str, quota: str, status: int) -> None:
        for part in self.parts:
            part.quota_refused(tenant, quota, status)

    def doctor_checked(self, kind: str, leaks: int, fixed: int) -> None:
        for part in self.parts:
            part.doctor_checked(kind, leaks, fixed)


@runtime_checkable
class Instrumented(Protocol):
    """A part (backend, transport, timers) that reports through its ``instruments`` attribute."""

    instruments: Instruments


def attach(part: object, instruments: Instruments) -> None:
    """Give ``part`` the (guarded) instruments if it reports anything; otherwise do nothing."""
    if isinstance(part, Instrumented):
        part.instruments = guarded(instruments)
