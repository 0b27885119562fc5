"""Commands: inputs to the machine. Each carries the time the handler stamped on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

# Who issues the commands the orchestrator makes itself: worker results, timers, a child's result
# for its parent, resumes. Every other entry point names its own actor (see docs/events.md).
SYSTEM_ACTOR: Final = "system"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A step failure as reported by a connector."""

    type: str
    message: str = ""
    retryable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "retryable": self.retryable}


@dataclass(frozen=True, slots=True)
class ParentRef:
    execution_id: str
    step: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """``command_id`` lets a redelivered command (Kafka after a crash) be recognised; ``actor``
    names who or what issued it (recorded on the events it causes)."""

    execution_id: str
    now: float
    actor: str | None = SYSTEM_ACTOR
    command_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartExecution(Command):
    workflow: str
    version: int
    input: Any = None
    tenant: str = "default"
    dedup_key: str | None = None
    parent: ParentRef | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Redrive: step name -> recorded output. Such a step is not run on its first visit; its
    # recorded output is taken instead (``StepSucceeded`` with ``"reused": true``).
    reuse: dict[str, Any] = field(default_factory=dict)
    # A start rate limit's slot (epoch seconds): when later than ``now``, the first step waits
    # for it on a timer (``purpose: start``) recorded with the start.
    not_before: float | None = None
    # Debounce: the key expression's value. The first step then waits on a ``debounce`` timer
    # due at ``not_before`` (the end of the quiet period), which ``DebounceStart`` pushes back.
    debounce_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DebounceStart(Command):
    """A later start with the same debounce key: while the execution is in its quiet period it
    takes the start's place (its ``input``) and waits until ``due``; otherwise nothing changes."""

    input: Any = None
    due: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteStep(Command):
    step: str
    attempt_id: str
    output: Any = None
    # What the attempt used (wall and CPU seconds, peak memory, bytes in and out), measured by
    # the worker and recorded on the outcome event; not part of what the command means.
    resources: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailStep(Command):
    step: str
    attempt_id: str
    error: ErrorInfo
    resources: dict[str, Any] | None = field(default=None, compare=False)  # as on CompleteStep


@dataclass(frozen=True, slots=True, kw_only=True)
class FireTimer(Command):
    timer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverEvent(Command):
    """An external event or signal. Without a correlation key it targets the execution directly."""

    name: str
    payload: Any = None
    correlation_key: str | None = None
    event_id: str | None = None  # a message's dedup key: an event id is delivered at most once
    reason: str | None = None  # why an operator sent it (recorded on the event when given)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildFinished(Command):
    child_id: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelExecution(Command):
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmitExecution(Command):
    """The admission grants a queued execution the slots it waits for (docs/resources.md).

    ``ticket`` is the number of admissions the execution had when the grant was decided: a grant
    decided for an earlier wait (a redelivered command after the slots were given back and asked
    for again) names an older ticket and changes nothing. None: admit whatever the ticket.
    ``epoch``: the admitter's (Kafka mode, ``orchestrator.engine.admission_epoch``); the owner
    refuses a grant of an older epoch than the stored one. None: no admitter epoch (one process)."""

    ticket: int | None = None
    epoch: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefuseAdmission(Command):
    """A queued execution's limit is full and says ``on_limit: fail``: the execution fails."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeExecution(Command):
    """Not for the machine: asks the owner of an execution to re-derive its effects."""
