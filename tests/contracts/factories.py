"""Small builders of test envelopes and definitions, with the real event type names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.core.events import EXECUTION_STARTED, STEP_SUCCEEDED
from schemas.definition import TaskStep, WorkflowDefinition
from schemas.envelope import Envelope

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: float) -> str:
    """RFC 3339 time ``seconds`` after 2024-01-01T00:00:00Z, fixed width, millisecond precision."""
    return (
        (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def started(
    execution_id: str,
    workflow: str = "wf",
    *,
    time: str | None = None,
    version: int = 1,
    tenant: str = "default",
    parent: str | None = None,
    input: Any = None,
    actor: str | None = None,
) -> Envelope:
    """The ExecutionStarted envelope (sequence 1) of an execution."""
    data: dict[str, Any] = {"input": input if input is not None else {"n": 1}}
    if parent is not None:
        data["parent"] = {"execution_id": parent, "step": "child"}
    return Envelope(
        id=f"{execution_id}-1",
        type=EXECUTION_STARTED,
        subject=execution_id,
        sequence=1,
        time=time or at(0),
        workflow=workflow,
        workflowversion=version,
        data=data,
        tenant=tenant,
        actor=actor,
    )


def event(
    execution_id: str,
    sequence: int,
    type: str = STEP_SUCCEEDED,
    data: Any = None,
    *,
    workflow: str = "wf",
    time: str | None = None,
    tenant: str = "default",
) -> Envelope:
    """Any later event of an execution; its time defaults to ``sequence`` seconds after T0."""
    return Envelope(
        id=f"{execution_id}-{sequence}",
        type=type,
        subject=execution_id,
        sequence=sequence,
        time=time or at(sequence),
        workflow=workflow,
        workflowversion=1,
        data=data if data is not None else {"step": f"s{sequence}", "output": sequence},
        tenant=tenant,
    )


def history(execution_id: str, length: int, workflow: str = "wf") -> list[Envelope]:
    """ExecutionStarted then ``length - 1`` StepSucceeded events."""
    return [started(execution_id, workflow)] + [
        event(execution_id, seq, workflow=workflow) for seq in range(2, length + 1)
    ]


def definition(
    name: str = "orders", *, version: int | None = None, url: str = "https://example.test/a"
) -> WorkflowDefinition:
    """A one-step definition; change ``url`` to change its content."""
    return WorkflowDefinition(
        name=name,
        version=version,
        steps=[TaskStep(name="call", connector="http", config={"url": url})],
    )
