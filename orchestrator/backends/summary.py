"""The executions index as a projection of appended events (shared by every event-log backend)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.core.events import EVENT_AWAITED, EXECUTION_STARTED, STATUS_BY_TERMINAL_TYPE
from orchestrator.ports import ExecutionSummary
from schemas.envelope import Envelope


def summarize(previous: ExecutionSummary | None, events: Sequence[Envelope]) -> ExecutionSummary:
    """The summary after ``events``; the first batch of an execution must start with ExecutionStarted."""
    summary = previous
    changed = None  # the last event after the summary's first: one copy for the whole batch
    status, key = "", None
    for event in events:
        if summary is None:
            if event.type != EXECUTION_STARTED:
                raise ValueError(f"execution {event.subject} must start with {EXECUTION_STARTED}")
            parent = event.data.get("parent") or {}
            summary = ExecutionSummary(
                execution_id=event.subject,
                workflow=event.workflow,
                version=event.workflowversion,
                tenant=event.tenant,
                status="running",
                started_at=event.time,
                updated_at=event.time,
                last_sequence=event.sequence,
                parent_id=parent.get("execution_id"),
                started_by=event.actor,
            )
            continue
        if changed is None:
            status, key = summary.status, summary.correlation_key
        changed = event
        status = STATUS_BY_TERMINAL_TYPE.get(event.type, status)
        if event.type == EVENT_AWAITED and event.data.get("correlation_key") is not None:
            key = str(event.data["correlation_key"])
    if summary is None:
        raise ValueError("nothing to summarise")
    if changed is not None:  # built directly: dataclasses.replace costs twice as much, per append
        s = summary
        summary = ExecutionSummary(
            s.execution_id, s.workflow, s.version, s.tenant, status, s.started_at, changed.time, changed.sequence,
            s.parent_id, s.started_by, key,
        )  # fmt: skip
    return summary


def check_sequences(execution_id: str, expected_sequence: int, events: Sequence[Envelope]) -> None:
    """Events must belong to the execution and continue its sequence without a gap."""
    for offset, event in enumerate(events, start=1):
        if event.subject != execution_id:
            raise ValueError(f"event {event.id} belongs to {event.subject}, not {execution_id}")
        if event.sequence != expected_sequence + offset:
            raise ValueError(
                f"event {event.id} has sequence {event.sequence}, expected {expected_sequence + offset}"
            )
