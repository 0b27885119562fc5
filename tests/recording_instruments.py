"""A test double of ``orchestrator.instrumentation.Instruments`` that records every call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class RecordingInstruments:
    """Keeps ``(call name, arguments)`` in order; ``of(name)`` lists one call's arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for call, args in self.calls if call == name]

    def names(self) -> set[str]:
        return {call for call, _ in self.calls}

    def __iter__(self) -> Iterator[tuple[str, tuple[Any, ...]]]:
        return iter(list(self.calls))

    def command_handled(self, kind: str, outcome: str, seconds: float) -> None:
        self.calls.append(("command_handled", (kind, outcome, seconds)))

    def events_appended(self, backend: str, outcome: str, events: int, seconds: float) -> None:
        self.calls.append(("events_appended", (backend, outcome, events, seconds)))

    def step_started(self, workflow: str, step: str, connector: str, attempt: int) -> None:
        self.calls.append(("step_started", (workflow, step, connector, attempt)))

    def step_finished(
        self, workflow: str, step: str, connector: str, attempt: int, outcome: str, seconds: float
    ) -> None:
        self.calls.append(("step_finished", (workflow, step, connector, attempt, outcome, seconds)))

    def trigger_outcome(self, kind: str, workflow: str, trigger: str, outcome: str) -> None:
        self.calls.append(("trigger_outcome", (kind, workflow, trigger, outcome)))

    def timer_fired(self, backend: str, lateness: float) -> None:
        self.calls.append(("timer_fired", (backend, lateness)))

    def consumer_lag(self, group: str, topic: str, partition: int, lag: int) -> None:
        self.calls.append(("consumer_lag", (group, topic, partition, lag)))

    def queue_depth(self, queue: str, depth: int) -> None:
        self.calls.append(("queue_depth", (queue, depth)))

    def execution_started(self, workflow: str) -> None:
        self.calls.append(("execution_started", (workflow,)))

    def execution_finished(self, workflow: str, status: str, seconds: float | None) -> None:
        self.calls.append(("execution_finished", (workflow, status, seconds)))

    def step_queued(self, workflow: str, step: str, connector: str, seconds: float) -> None:
        self.calls.append(("step_queued", (workflow, step, connector, seconds)))

    def appends_grouped(self, backend: str, appends: int) -> None:
        self.calls.append(("appends_grouped", (backend, appends)))

    def timers_pending(self, backend: str, count: int) -> None:
        self.calls.append(("timers_pending", (backend, count)))

    def waits_parked(self, backend: str, count: int) -> None:
        self.calls.append(("waits_parked", (backend, count)))

    def transport_lane(self, group: str, topic: str, partition: int, in_flight: int, uncommitted: int) -> None:
        self.calls.append(("transport_lane", (group, topic, partition, in_flight, uncommitted)))

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
        args = (execution_id, workflow, tenant, traceparent, status, started_at, ended_at)
        self.calls.append(("execution_traced", args))

    def step_traced(
        self,
        execution_id: str,
        workflow: str,
        step: str,
        connector: str,
        attempt: int,
        traceparent: str | None,
        outcome: str,
        error: str | None,
        started_at: float,
        ended_at: float,
    ) -> None:
        args = (execution_id, workflow, step, connector, attempt, traceparent, outcome, error, started_at, ended_at)
        self.calls.append(("step_traced", args))

    def sla_breached(self, scope: str, workflow: str) -> None:
        self.calls.append(("sla_breached", (scope, workflow)))

    def quota_usage(self, tenant: str, quota: str, usage: int) -> None:
        self.calls.append(("quota_usage", (tenant, quota, usage)))

    def quota_refused(self, tenant: str, quota: str, status: int) -> None:
        self.calls.append(("quota_refused", (tenant, quota, status)))

    def doctor_checked(self, kind: str, leaks: int, fixed: int) -> None:
        self.calls.append(("doctor_checked", (kind, leaks, fixed)))
